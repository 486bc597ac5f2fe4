import asyncio
import multiprocessing

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from common.db import alembic_config, make_engine, upgrade_to_head_async
from services.trained_model import bootstrap as trained_model_bootstrap
from services.training_run import bootstrap as training_run_bootstrap
from tests.integration.migrate_racer import migrate_after_barrier
from tests.reliability.results import record

SERVICES = [training_run_bootstrap, trained_model_bootstrap]
RACERS = 4


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.SERVICE)
async def test_migrations_apply_twice_and_create_owned_tables(service, database_url: str) -> None:
    await upgrade_to_head_async(service.MIGRATIONS, database_url, service.VERSION_TABLE)
    await upgrade_to_head_async(service.MIGRATIONS, database_url, service.VERSION_TABLE)
    engine = make_engine(database_url)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    assert service.VERSION_TABLE in tables
    owned = {t for t in tables if not t.startswith("alembic_version")}
    assert owned, "a service must create its own tables"


async def test_both_services_share_one_database_without_collisions(database_url: str) -> None:
    for service in SERVICES:
        await upgrade_to_head_async(service.MIGRATIONS, database_url, service.VERSION_TABLE)
    engine = make_engine(database_url)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    assert {"alembic_version_training_run", "alembic_version_trained_model"} <= tables


@pytest.mark.timeout(180)
@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.SERVICE)
async def test_concurrent_starts_against_one_empty_database_migrate_once(service, database_url: str) -> None:
    """RACERS processes start migrating the same empty database at the same instant (a barrier): all succeed,
    no duplicate-table error, the schema ends at head with a single version row."""
    context = multiprocessing.get_context("spawn")
    barrier, errors = context.Barrier(RACERS), context.Queue()
    racers = [
        context.Process(
            target=migrate_after_barrier,
            args=(str(service.MIGRATIONS), database_url, service.VERSION_TABLE, barrier, errors),
        )
        for _ in range(RACERS)
    ]
    for racer in racers:
        racer.start()
    await asyncio.to_thread(lambda: [racer.join(150) for racer in racers])
    reported = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    exit_codes = [racer.exitcode for racer in racers]
    head = ScriptDirectory.from_config(
        alembic_config(service.MIGRATIONS, database_url, service.VERSION_TABLE)
    )
    engine = make_engine(database_url)
    async with engine.connect() as conn:
        versions = (await conn.execute(text(f"SELECT version_num FROM {service.VERSION_TABLE}"))).all()
    await engine.dispose()
    record(
        "concurrent_migrations",
        {
            "dialect": database_url.split(":", 1)[0].split("+", 1)[0],
            "service": service.SERVICE,
            "racers": RACERS,
            "succeeded": exit_codes.count(0),
            "version_rows": len(versions),
        },
    )
    assert exit_codes == [0] * RACERS, reported
    assert [row[0] for row in versions] == [head.get_current_head()]
