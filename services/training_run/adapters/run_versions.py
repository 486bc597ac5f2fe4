"""Point reads of a run's row version, the check behind the GetTrainingRun cache (``run_reads``).

On SQLite the aiosqlite session costs several thread hops per statement (checkout, execute, fetch, rollback),
about 1 ms, most of a Get. ``SqliteRunVersions`` reads ``version`` by primary key on its own ``sqlite3``
connection, on the event loop: the read takes 4-15 µs (a Get's own gRPC and auth work is far more), and
``bench/bench_training_run.py`` measured GetTrainingRun 15-30 % slower when the same read went through a
worker thread (one ``run_in_executor`` hop). It cannot wait: in WAL mode a reader never waits for writers, and
``busy_timeout`` is 0, so a rare ``SQLITE_BUSY`` (WAL recovery, a checkpoint restart) raises at once and the
caller takes the ordinary async path. PostgreSQL (asyncpg, no threads) uses ``EngineRunVersions``.
"""

from __future__ import annotations

import sqlite3
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
    """The point read, on the event loop: measured cheaper than any way off it (module docstring)."""

    def __init__(self, path: str) -> None:
        self._connection: sqlite3.Connection | None = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False
        )
        self._connection.execute("PRAGMA busy_timeout=0")

    async def version(self, run_id: str) -> int | None:
        if self._connection is None:
            raise sqlite3.ProgrammingError("closed")  # the caller takes the ordinary async path
        row = self._connection.execute(_VERSION_SQL, (run_id,)).fetchone()
        return None if row is None else int(row[0])

    def close(self) -> None:
        """A second call does nothing."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def run_versions_for(engine: AsyncEngine) -> RunVersions:
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return SqliteRunVersions(url.database)
    return EngineRunVersions(engine)
