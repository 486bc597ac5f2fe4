"""trained_model replicas: an evaluation's reports are applied in stream order (its start before its result),
so the evaluation tracker runs on one replica at a time (``common.leadership``), and another replica takes it
over when that one stops. Real nats-server, real SQLite database shared by the replicas."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from common.db import make_engine, make_session_factory
from common.nats_streams import StreamNames, connect, ensure_streams
from common.settings import Settings
from services.trained_model.bootstrap import migrate, utc_now
from services.trained_model.entrypoints.evaluation_wiring import EvaluationParts, build_evaluations
from services.trained_model.service_layer.unit_of_work import UnitOfWorkFactory

pytestmark = pytest.mark.timeout(60)


class NoVersions:
    async def close(self) -> None:
        pass


async def test_one_replica_tracks_evaluations_and_another_takes_over(
    nats_url: str, unique: str, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'tm.db'}", nats_url=nats_url,
        grpc_port=0, log_json=False, ordered_consumer_lease_seconds=1.5,
    )  # fmt: skip
    await migrate(settings)
    engine = make_engine(settings.database_url_for("trained_model"))
    names = StreamNames(jobs=f"ETJ_{unique}", events=f"ETE_{unique}", prefix=f"et{unique}")
    replicas: list[tuple[object, EvaluationParts]] = []
    try:
        for _ in range(2):
            nc = await connect(nats_url, "test-trained-model-replica")
            js = nc.jetstream()
            await ensure_streams(js, names)
            uow = UnitOfWorkFactory(make_session_factory(engine))
            parts = await build_evaluations(
                settings,
                uow,
                utc_now,
                nc,
                js,
                names,
                versions=NoVersions(),  # type: ignore[arg-type]
            )
            replicas.append((nc, parts))
        leases = [parts.tracker_lease for _, parts in replicas]
        assert all(lease is not None for lease in leases)
        assert [lease.active for lease in leases] == [True, False]  # type: ignore[union-attr]
        trackers = [parts.tracker for _, parts in replicas]
        assert trackers[0]._tasks and not trackers[1]._tasks  # type: ignore[union-attr]  # only one consumes
        await replicas[0][1].stop()
        deadline = time.monotonic() + 3
        while not leases[1].active and time.monotonic() < deadline:  # type: ignore[union-attr]  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert leases[1].active and trackers[1]._tasks  # type: ignore[union-attr]
    finally:
        for nc, parts in replicas:
            await parts.stop()
            await nc.close()  # type: ignore[attr-defined]
        await engine.dispose()
