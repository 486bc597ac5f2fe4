import pytest
from sqlalchemy import inspect

from common.db import make_engine, upgrade_to_head_async
from services.trained_model import bootstrap as trained_model_bootstrap
from services.training_run import bootstrap as training_run_bootstrap

SERVICES = [training_run_bootstrap, trained_model_bootstrap]


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
