"""RunRepository.save writes only the columns a change touched, still guarded by the row version (SQLite)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import make_engine, make_session_factory, upgrade_to_head_async
from services.training_run.adapters.repository import ConcurrentUpdate, RunRepository
from services.training_run.bootstrap import MIGRATIONS, VERSION_TABLE
from services.training_run.domain.model import Phase, RunSpec, TrainingRun

CONFIG = "model = dict(type='RTMDet')\n" * 200


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
    await upgrade_to_head_async(MIGRATIONS, url, VERSION_TABLE)
    found = make_engine(url)
    yield found
    await found.dispose()


def _run() -> TrainingRun:
    spec = RunSpec(
        dataset="datasets/d", model_template="rtmdet_tiny", class_names=("bottle",), hyperparameters={},
        max_attempts=3, config_text=CONFIG, config_data={"model": {"type": "RTMDet"}}, config_sha256="ab",
    )  # fmt: skip
    return TrainingRun.create(id=uuid.uuid4().hex, owner="alice", display_name="r", spec=spec, now=_now())


def _now() -> datetime:
    return datetime.now(UTC)


async def test_a_progress_event_writes_the_changed_columns_not_the_config(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    run = _run()
    async with sessions() as session, session.begin():
        await RunRepository(session).add(run)
    updates: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.startswith("UPDATE training_runs"):
            updates.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    async with sessions() as session, session.begin():
        repo = RunRepository(session)
        loaded = await repo.get(run.id)
        assert loaded is not None
        loaded.claim("worker-1", loaded.attempt, _now(), timedelta(seconds=30))
        await repo.save(loaded)
        assert loaded.on_progress(loaded.attempt, 1, _now(), Phase.TRAINING, b"p1")
        await repo.save(loaded)  # a second change in the same unit of work: against what the first wrote
    event.remove(engine.sync_engine, "before_cursor_execute", seen)

    assert len(updates) == 2
    for statement, _ in updates:
        assert "config_text" not in statement and "config_data" not in statement and "owner" not in statement
    assert "worker_id" in updates[0][0] and "worker_id" not in updates[1][0]
    assert "progress" in updates[1][0] and "phase" in updates[1][0]
    async with sessions() as session:
        stored = await RunRepository(session).get(run.id)
    assert stored is not None
    assert (stored.spec.config_text, stored.spec.config_data) == (CONFIG, {"model": {"type": "RTMDet"}})
    assert (stored.version, stored.worker_id, stored.phase, stored.progress) == (
        3,
        "worker-1",
        Phase.TRAINING,
        b"p1",
    )


async def test_a_save_over_a_newer_row_is_a_concurrent_update(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    run = _run()
    async with sessions() as session, session.begin():
        await RunRepository(session).add(run)
    async with sessions() as first_session, sessions() as second_session:
        first_repo = RunRepository(first_session)
        first = await first_repo.get(run.id)
        second_repo = RunRepository(second_session)
        second = await second_repo.get(run.id)
        assert first is not None and second is not None
        await first_session.commit()  # the read transaction ends before the second writer's
        second.claim("worker-2", second.attempt, _now(), timedelta(seconds=30))
        await second_repo.save(second)
        await second_session.commit()
        first.claim("worker-1", first.attempt, _now(), timedelta(seconds=30))
        with pytest.raises(ConcurrentUpdate):
            await first_repo.save(first)
