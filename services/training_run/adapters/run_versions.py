"""A run's row version, read by primary key: the freshness check behind GetTrainingRun's renderings
(``service_layer/run_reads``). Both readers are ordinary async reads: nothing blocks the event loop.

- PostgreSQL: a statement on the service's engine (asyncpg).
- SQLite: one ``aiosqlite`` connection of its own, reading in WAL mode (readers never wait for the writer).
  Through the engine, the aiosqlite dialect makes four to five hops to its worker thread per statement
  (cursor, execute, fetch, close, rollback); here the read is one hop (``execute_fetchall``).

It replaced a synchronous ``sqlite3`` read on the event loop: ``bench/bench_training_run.py`` measured that
one hop at about 60-80 us of server CPU per GetTrainingRun, GetTrainingRun / bare 0.79 against 0.86 (2 cores).
"""

from __future__ import annotations

from typing import Protocol

import aiosqlite
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import SQLITE_BUSY_SECONDS
from services.training_run.adapters.repository import RUNS

_VERSION = select(RUNS.c.version).where(RUNS.c.id == bindparam("run_id"))
_VERSION_SQL = "SELECT version FROM training_runs WHERE id = ?"


class RunVersions(Protocol):
    async def version(self, run_id: str) -> int | None:
        """The stored row's version, None when the run does not exist."""
        ...

    async def close(self) -> None: ...


class EngineRunVersions:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def version(self, run_id: str) -> int | None:
        async with self._engine.connect() as connection:
            return (await connection.execute(_VERSION, {"run_id": run_id})).scalar_one_or_none()

    async def close(self) -> None:
        pass


class SqliteRunVersions:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection: aiosqlite.Connection | None = connection

    async def version(self, run_id: str) -> int | None:
        if self._connection is None:
            raise aiosqlite.ProgrammingError("closed")
        rows = await self._connection.execute_fetchall(_VERSION_SQL, (run_id,))
        return None if not rows else int(next(iter(rows))[0])

    async def close(self) -> None:
        """A second call does nothing."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()


async def run_versions_for(engine: AsyncEngine) -> RunVersions:
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        # WAL is the database's mode already (the engine set it); this connection only reads
        return SqliteRunVersions(await aiosqlite.connect(url.database, timeout=SQLITE_BUSY_SECONDS))
    return EngineRunVersions(engine)
