"""A run's row version, read by primary key: the freshness check behind GetTrainingRun's renderings
(``service_layer/run_reads``). Both readers are ordinary async reads: nothing blocks the event loop.

- PostgreSQL: a statement on the service's engine (asyncpg).
- SQLite: one ``aiosqlite`` connection of its own, reading in WAL mode (readers never wait for the writer).
  Through the engine, the aiosqlite dialect makes four to five hops to its worker thread per statement
  (cursor, execute, fetch, close, rollback); here the read is one hop (``execute_fetchall``).

Reads asked for in one turn of the event loop share one statement (``WHERE id IN (...)``, one hop), sent at
the end of that turn: many clients reading runs at once (a dashboard wall, the same run polled by many) cost
one database round trip per turn, not one each. Each caller still gets a read that began after it asked, so
a Get never misses a write that committed before it arrived.

It replaced a synchronous ``sqlite3`` read on the event loop: ``bench/bench_training_run.py`` measured that
one hop at about 60-80 us of server CPU per GetTrainingRun, GetTrainingRun / bare 0.79 against 0.86 (2 cores).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiosqlite
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import SQLITE_BUSY_SECONDS
from services.training_run.adapters.repository import RUNS

_VERSIONS = select(RUNS.c.id, RUNS.c.version).where(RUNS.c.id.in_(bindparam("ids", expanding=True)))
MAX_IDS = 500  # per statement (SQLite's bound-parameter limit is far above)
ReadMany = Callable[[list[str]], Awaitable[dict[str, int]]]


class RunVersions(Protocol):
    async def version(self, run_id: str) -> int | None:
        """The stored row's version, None when the run does not exist."""
        ...

    async def close(self) -> None: ...


class CoalescedVersions:
    """``version`` calls of one loop turn answered by one ``read_many`` (see the module docstring)."""

    def __init__(self, read_many: ReadMany, close: Callable[[], Awaitable[None]] | None = None) -> None:
        self._read_many = read_many
        self._close = close
        self._asked: dict[str, asyncio.Future[int | None]] = {}
        self._reads: set[asyncio.Task[None]] = set()
        self.statements = 0  # reads sent (a test and the benchmark compare it with the calls)

    async def version(self, run_id: str) -> int | None:
        future = self._asked.get(run_id)
        if future is None:
            loop = asyncio.get_running_loop()
            if not self._asked:
                loop.call_soon(self._send)
            future = self._asked[run_id] = loop.create_future()
        # shielded: a caller that gives up does not cancel the answer the others wait for
        return await asyncio.shield(future)

    def _send(self) -> None:
        asked, self._asked = self._asked, {}
        ids = list(asked)
        for start in range(0, len(ids), MAX_IDS):
            part = {run_id: asked[run_id] for run_id in ids[start : start + MAX_IDS]}
            task = asyncio.get_running_loop().create_task(self._answer(part))
            self._reads.add(task)
            task.add_done_callback(self._reads.discard)

    async def _answer(self, asked: dict[str, asyncio.Future[int | None]]) -> None:
        self.statements += 1
        try:
            found = await self._read_many(list(asked))
        except BaseException as exc:  # each caller sees the failure (GetTrainingRun then reads in full)
            failure = exc if isinstance(exc, Exception) else RuntimeError("version read cancelled")
            for future in asked.values():
                if not future.done():
                    future.set_exception(failure)
                    future.add_done_callback(_retrieved)
            if not isinstance(exc, Exception):
                raise
            return
        for run_id, future in asked.items():
            if not future.done():
                future.set_result(found.get(run_id))

    async def close(self) -> None:
        """Waits for the reads under way, then closes the reader; a second call does nothing."""
        if self._reads:
            await asyncio.gather(*self._reads, return_exceptions=True)
        if self._close is not None:
            close, self._close = self._close, None
            await close()


def _retrieved(future: asyncio.Future[int | None]) -> None:
    future.exception()  # nobody may be waiting any more: no "exception was never retrieved" warning


def engine_versions(engine: AsyncEngine) -> CoalescedVersions:
    async def read_many(ids: list[str]) -> dict[str, int]:
        async with engine.connect() as connection:
            rows = await connection.execute(_VERSIONS, {"ids": ids})
            return {run_id: int(version) for run_id, version in rows}

    return CoalescedVersions(read_many)


def sqlite_versions(connection: aiosqlite.Connection) -> CoalescedVersions:
    closed = False

    async def read_many(ids: list[str]) -> dict[str, int]:
        if closed:
            raise aiosqlite.ProgrammingError("closed")
        marks = ",".join("?" * len(ids))
        rows = await connection.execute_fetchall(
            f"SELECT id, version FROM training_runs WHERE id IN ({marks})",
            ids,  # only "?" marks interpolated
        )
        return {run_id: int(version) for run_id, version in rows}

    async def close() -> None:
        nonlocal closed
        closed = True
        await connection.close()

    return CoalescedVersions(read_many, close)


async def run_versions_for(engine: AsyncEngine) -> RunVersions:
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        # WAL is the database's mode already (the engine set it); this connection only reads
        return sqlite_versions(await aiosqlite.connect(url.database, timeout=SQLITE_BUSY_SECONDS))
    return engine_versions(engine)
