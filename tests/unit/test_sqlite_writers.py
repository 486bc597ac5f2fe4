"""One SQLite writer at a time per process, queued on the event loop (common.sqlite_writers); real files."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from common.db import make_engine
from common.sqlite_writers import WriterBusy


async def _engine_with_table(path: Path, busy_seconds: float):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite+aiosqlite:///{path}", sqlite_busy_seconds=busy_seconds)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (x INTEGER)"))
    return engine


async def test_a_waiting_writer_leaves_the_event_loop_free(tmp_path: Path) -> None:
    """The defect: a writer waiting inside SQLite holds its connection's mutex in its thread; the garbage
    collector, on the loop, clearing an old cursor of that connection blocked on it until the busy timeout,
    and the loop with it (so the writer holding the lock could not commit either)."""
    busy = 6.0  # before the fix the collection below waited this out (less the 0.3 s sleep)
    engine = await _engine_with_table(tmp_path / "w.db", busy_seconds=busy)
    holder = await engine.connect()
    waiter = await engine.connect()
    try:
        await holder.execute(text("INSERT INTO t VALUES (1)"))  # SQLite's write lock, held
        driver = (await waiter.get_raw_connection()).driver_connection
        assert driver is not None
        cursor = await driver.cursor()  # a statement left in use on the waiter's connection, in a cycle
        await cursor.execute("SELECT 1 UNION ALL SELECT 2")
        await cursor.fetchone()
        box: list[object] = [cursor]
        box.append(box)
        del cursor, box
        write = asyncio.create_task(waiter.execute(text("INSERT INTO t VALUES (2)")))
        await asyncio.sleep(0.3)
        assert not write.done()
        started = time.monotonic()
        gc.collect()
        stalled = time.monotonic() - started
        await holder.commit()
        await asyncio.wait_for(write, 5)
        await waiter.commit()
        assert stalled < busy / 2, f"the loop stalled {stalled:.2f} s collecting garbage"
        rows = (await holder.execute(text("SELECT x FROM t ORDER BY x"))).scalars().all()
        assert rows == [1, 2]
    finally:
        await holder.close()
        await waiter.close()
        await engine.dispose()


async def test_a_writer_that_waits_too_long_is_told_to_retry(tmp_path: Path) -> None:
    engine = await _engine_with_table(tmp_path / "w.db", busy_seconds=0.5)
    holder = await engine.connect()
    waiter = await engine.connect()
    try:
        await holder.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(WriterBusy) as caught:
            await waiter.execute(text("INSERT INTO t VALUES (2)"))
        assert "retry" in caught.value.message and "sqlite" not in caught.value.message.lower()
        await waiter.rollback()
        await holder.commit()
        await waiter.execute(text("INSERT INTO t VALUES (3)"))  # the lock was given back by the commit
        await waiter.commit()
        rows = (await holder.execute(text("SELECT x FROM t ORDER BY x"))).scalars().all()
        assert rows == [1, 3]
    finally:
        await holder.close()
        await waiter.close()
        await engine.dispose()


async def test_reads_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    engine = await _engine_with_table(tmp_path / "w.db", busy_seconds=5.0)
    holder = await engine.connect()
    reader = await engine.connect()
    try:
        await holder.execute(text("INSERT INTO t VALUES (1)"))
        started = time.monotonic()
        counted = (await reader.execute(text("SELECT count(*) FROM t"))).scalar_one()
        assert counted == 0  # WAL: the reader sees the last commit, at once
        assert time.monotonic() - started < 1.0
        await holder.rollback()  # a rollback gives the lock back too
        await reader.execute(text("INSERT INTO t VALUES (2)"))
        await reader.commit()
    finally:
        await holder.close()
        await reader.close()
        await engine.dispose()


def test_sqlites_own_lock_timeout_is_a_retryable_error() -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from common.sqlite_writers import database_busy

    locked = OperationalError("UPDATE t SET x = 1", {}, sqlite3.OperationalError("database is locked"))
    busy = database_busy(locked)
    assert busy is not None and busy.message == "the database is busy with other writes; retry"
    other = OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: t"))
    assert database_busy(other) is None and database_busy(ValueError("database is locked")) is None
    reset = ConnectionResetError("server closed the connection")
    gone = OperationalError("SELECT 1", {}, reset, connection_invalidated=True)
    lost = database_busy(gone)
    assert lost is not None and lost.message == "the connection to the database was lost; retry"
