"""One writer at a time per process on an SQLite engine, queued on the event loop instead of in SQLite.

SQLite lets one connection write at a time; a second writer's statement waits inside ``sqlite3_step`` (the
busy timeout), holding its connection's mutex in that connection's aiosqlite thread. Anything on the event
loop thread that touches that connection meanwhile blocks on the mutex too, and the garbage collector does: it
clears a cycle holding an old cursor of the waiting connection (a failed statement's traceback keeps one) with
``sqlite3_reset``. The loop then stops, the writer that holds SQLite's lock (a coroutine on that loop) cannot
reach its COMMIT, and every writer waits out the whole busy timeout and fails with "database is locked": one
concurrent Create in five did, stopping the service for 30 s.

So each write transaction first takes a per-process asyncio lock, before its first INSERT/UPDATE/DELETE
(pysqlite opens the transaction there), and gives it back when the transaction ends. Writers of this process
wait on the loop, where nothing is blocked; SQLite's busy timeout is left for other processes (a migration
Job). A writer that cannot get the lock within the timeout gets :class:`WriterBusy`, which services answer as
UNAVAILABLE ("retry"), not INTERNAL; so is SQLite's own "database is locked" (:func:`database_busy`).
"""

from __future__ import annotations

import asyncio
import re
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

from common.errors import Unavailable

_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_HELD = "raven_sqlite_writer"  # key in the pooled connection's ``info``: the lock it holds


class WriterBusy(Unavailable):
    """Another write transaction of this process held the database for the whole timeout."""


def database_busy(exc: BaseException) -> Unavailable | None:
    """A database error worth retrying, as the UNAVAILABLE it is: SQLite's own "database is locked" (another
    process wrote for the whole busy timeout), or a connection found dead on use (a PostgreSQL restart: the
    pool is invalidated and the retry connects anew); None for anything else."""
    if isinstance(exc, OperationalError) and "database is locked" in str(exc.orig):
        return WriterBusy("the database is busy with other writes; retry")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return Unavailable("the connection to the database was lost; retry")
    return None


async def _acquire(lock: asyncio.Lock, timeout_seconds: float) -> None:
    async with asyncio.timeout(timeout_seconds):
        await lock.acquire()


def serialize_writers(engine: AsyncEngine, timeout_seconds: float) -> None:
    """Queue this engine's write transactions on one asyncio lock per event loop (module docstring)."""
    locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def before_write(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if _HELD in conn.info or not _WRITE.match(statement):
            return
        loop = asyncio.get_running_loop()
        lock = locks.get(loop)
        if lock is None:
            lock = locks[loop] = asyncio.Lock()
        try:
            await_only(_acquire(lock, timeout_seconds))
        except TimeoutError:
            raise WriterBusy(
                f"the database stayed busy with other writes for {timeout_seconds:g} s; retry"
            ) from None
        conn.info[_HELD] = (loop, lock)

    def release(info: dict[str, Any]) -> None:
        held = info.pop(_HELD, None)
        if held is None:
            return
        loop, lock = held
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            lock.release()
        elif not loop.is_closed():  # a connection reset by the garbage collector in another thread
            loop.call_soon_threadsafe(lock.release)

    sync = engine.sync_engine
    event.listen(sync, "before_cursor_execute", before_write)
    event.listen(sync, "commit", lambda conn: release(conn.info))
    event.listen(sync, "rollback", lambda conn: release(conn.info))
    # A connection given back or reset without either (a failed COMMIT, a cancelled session) frees it too.
    event.listen(sync.pool, "checkin", lambda _dbapi, record: release(record.info))
    event.listen(sync.pool, "reset", lambda _dbapi, record, *_: release(record.info))
