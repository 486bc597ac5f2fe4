"""Shared fixtures: a real nats-server per session, SQLite files and PostgreSQL databases per test, tokens."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from common.nats_launcher import LocalNats, start_local_nats
from tests.reliability.results import record_test

POSTGRES_ADMIN_URL = os.environ.get("RAVEN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNats]:
    """Our own nats-server with JetStream on a free port (independent of any system NATS)."""
    store = tmp_path_factory.mktemp("nats")
    server = start_local_nats(store, log_file=store / "nats.log")
    yield server
    server.stop()


@pytest.fixture
def nats_url(nats_server: LocalNats) -> str:
    return nats_server.url


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


async def _postgres_reachable() -> str | None:
    try:
        import asyncpg

        conn = await asyncio.wait_for(asyncpg.connect(POSTGRES_ADMIN_URL), 3)
        await conn.close()
        return None
    except Exception as exc:  # any failure means "not reachable"
        return f"{type(exc).__name__}: {exc}"


@contextlib.asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """Create a uniquely named database, yield its async URL, drop it afterwards."""
    import asyncpg

    problem = await _postgres_reachable()
    if problem:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {problem}")
    name = f"raven_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database per test; skipped with the reason when none is reachable."""
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Every test's outcome goes to the results docs/reliability.md is generated from (when asked for)."""
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        record_test(report.nodeid, report.when, report.outcome, report.duration)
