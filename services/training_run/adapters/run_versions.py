"""Point reads of a run's row version, the check behind the GetTrainingRun cache (``run_reads``).

On SQLite the aiosqlite session costs several thread hops per statement (checkout, execute, fetch, rollback),
about 1 ms, most of a Get. ``SqliteRunVersions`` reads ``version`` by primary key on its own ``sqlite3``
connection, owned by one worker thread: one hop, never on the event loop. In WAL mode a reader never waits for
writers; ``busy_timeout`` is 0 so that a rare ``SQLITE_BUSY`` (WAL recovery, a checkpoint restart) raises at
once and the caller takes the ordinary async path. PostgreSQL (asyncpg, no threads) uses
``EngineRunVersions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.training_run.adapters.repository import RUNS

_VERSION_SQL = "SELECT version FROM training_runs WHERE id = ?"


class RunVersions(Protocol):
    async def version(self, run_id: str) -> int | None:
        """The stored row's version, None when the run does not exist."""
        ...

    def close(self) -> None: ...


class EngineRunVersions:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def version(self, run_id: str) -> int | None:
        async with self._engine.connect() as connection:
            found = await connection.execute(select(RUNS.c.version).where(RUNS.c.id == run_id))
            return found.scalar_one_or_none()

    def close(self) -> None:
        pass


class SqliteRunVersions:
    def __init__(self, path: str) -> None:
        self._path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="run-versions")
        self._connection: sqlite3.Connection | None = None  # opened and used only in that thread

    async def version(self, run_id: str) -> int | None:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._read, run_id)

    def _read(self, run_id: str) -> int | None:
        if self._connection is None:
            self._connection = sqlite3.connect(self._path, isolation_level=None)
            self._connection.execute("PRAGMA busy_timeout=0")
        row = self._connection.execute(_VERSION_SQL, (run_id,)).fetchone()
        return None if row is None else int(row[0])

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        """Closes the connection in its thread, then stops the thread; a second call does nothing."""
        with contextlib.suppress(RuntimeError):  # already shut down
            self._thread.submit(self._close_connection)
        self._thread.shutdown(wait=True)


def run_versions_for(engine: AsyncEngine) -> RunVersions:
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return SqliteRunVersions(url.database)
    return EngineRunVersions(engine)
