"""Async SQLAlchemy engine for SQLite and PostgreSQL, and Alembic migrations per service."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import DateTime, MetaData, Table, event, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.types import TypeDecorator

from common.sqlite_writers import serialize_writers

# Deterministic constraint names, so that migrations can alter and drop constraints on every dialect.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def naming_metadata() -> MetaData:
    """A fresh ``MetaData`` for one service's tables, naming constraints by ``NAMING_CONVENTION``."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def mapped_table(row_class: type[Any]) -> Table:
    """The ``Table`` a declarative class maps, for Core statements.

    SQLAlchemy types ``__table__`` as ``FromClause`` (a class may map any selectable); ours map tables.
    """
    table = row_class.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{row_class.__name__} does not map a Table")
    return table


SQLITE_BUSY_SECONDS = 30.0  # how long an SQLite writer waits for another (process: busy timeout; loop: queue)


def make_engine(url: str, sqlite_busy_seconds: float = SQLITE_BUSY_SECONDS, **kwargs: Any) -> AsyncEngine:
    """An engine with sane defaults; SQLite gets WAL, foreign keys, a busy timeout and one writer at a time
    per process (:mod:`common.sqlite_writers`)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": sqlite_busy_seconds}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(sqlite_busy_seconds * 1000)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        serialize_writers(engine, sqlite_busy_seconds)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_recycle", POOL_RECYCLE_SECONDS)
    engine = create_async_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        ping_when_idle(engine, PING_IDLE_SECONDS)
    return engine


# A pooled connection is pinged before use only when it sat idle this long. pool_pre_ping pinged on every
# checkout: one round trip more per transaction (a List page is one statement: the ping was a third of its
# round trips). A connection checked in moments ago was working then: it fails before its next use about as
# often as between a ping and that use. What the ping is for, a connection that died idle in the pool (a
# database restart, a proxy's or firewall's idle timeout), stays covered; pool_recycle bounds a connection's
# age. The cost: after a restart the first statement on a connection used within the last PING_IDLE_SECONDS
# fails (its caller gets UNAVAILABLE "retry", sqlite_writers.database_busy; SQLAlchemy then invalidates the
# whole pool), where pre_ping would have reconnected quietly.
PING_IDLE_SECONDS = 5.0
POOL_RECYCLE_SECONDS = 1800


def ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Pings a connection at checkout when it was checked in at least ``idle_seconds`` ago; one that fails
    the ping is replaced (DisconnectionError: the pool connects anew and tries again)."""
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "connect")
    def _connected(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if time.monotonic() - record.info.get("checked_in", 0.0) < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            if engine.dialect.is_disconnect(cast(Any, exc), dbapi_connection, None):
                raise DisconnectionError("the pooled connection is gone") from exc
            raise


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


def make_read_session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    """Sessions for reads of one statement each (a List page): on PostgreSQL in autocommit, without the BEGIN
    and ROLLBACK round trips around it (a statement is its own snapshot); elsewhere the ordinary ones."""
    if engine.dialect.name != "postgresql":
        return make_session_factory(engine)
    return make_session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))


def alembic_config(migrations_dir: Path, database_url: str, version_table: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["version_table"] = version_table
    config.attributes["database_url"] = database_url
    return config


# First key of the two-key PostgreSQL advisory lock migrators take ("RAVN"); the second is per version table.
MIGRATION_LOCK_NAMESPACE = 0x5241564E


def migration_lock_key(version_table: str) -> int:
    """The advisory lock key of one service's migrations (a signed 32-bit int, as PostgreSQL wants it)."""
    return zlib.crc32(version_table.encode()) - 2**31


def upgrade_to_head(migrations_dir: Path, database_url: str, version_table: str) -> None:
    """Apply every migration (idempotent; safe at each start-up and in the Kubernetes migration Job).

    One migrator at a time: on PostgreSQL the upgrade's transaction holds an advisory lock per version table
    (``run_async_migrations``); on SQLite a file lock next to the database serializes migrators. A migrator
    that waited finds the schema at head and does nothing.
    """
    with _sqlite_file_lock(database_url):
        command.upgrade(alembic_config(migrations_dir, database_url, version_table), "head")


@contextlib.contextmanager
def _sqlite_file_lock(database_url: str) -> Iterator[None]:
    path = database_url.split("///", 1)[-1] if database_url.startswith("sqlite") else ""
    if not path or path == ":memory:":
        yield
        return
    lock_path = Path(f"{path}.migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


async def upgrade_to_head_async(migrations_dir: Path, database_url: str, version_table: str) -> None:
    await asyncio.to_thread(upgrade_to_head, migrations_dir, database_url, version_table)


def run_async_migrations(context: Any, target_metadata: Any) -> None:
    """Body shared by every service's alembic ``env.py`` (online mode on an async engine)."""
    config = context.config
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    version_table = config.attributes.get("version_table", "alembic_version")

    def do_run(connection: Any) -> None:
        if connection.dialect.name == "postgresql":
            # Held until this transaction (the whole upgrade) commits: concurrent starts migrate one by one.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:namespace, :key)"),
                {"namespace": MIGRATION_LOCK_NAMESPACE, "key": migration_lock_key(version_table)},
            )
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=version_table,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = make_engine(url)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
            await connection.commit()
        await engine.dispose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
        return
    raise RuntimeError("call upgrade_to_head_async from async code (migrations run in a worker thread)")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both dialects.

    SQLite stores naive text that still sorts in time order; the zone is put back on read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
