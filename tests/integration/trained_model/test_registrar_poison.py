"""A completion the registrar can never register (its checkpoint can't be read) is delivered max_deliver
times, then dead-lettered for training_run to fail the run; the registrar goes on with the next completion."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from common.artifacts import ArtifactStore
from common.nats_streams import StreamNames, connect
from common.proto.raven.v1 import dead_letters_pb2
from common.settings import Settings
from services.trained_model.bootstrap import build_app
from services.trained_model.entrypoints.registrar import DURABLE
from tests.helpers import JWT_SECRET
from tests.integration.trained_model.conftest import Env, FakeTrainingRunService
from tests.integration.trained_model.test_registrar import replies

pytestmark = pytest.mark.timeout(90)
MAX_DELIVER = 3


@pytest.fixture
async def fast_env(
    sqlite_url: str,
    nats_url: str,
    tmp_path: Path,
    unique: str,
    training_run_server: tuple[FakeTrainingRunService, int],
) -> AsyncIterator[Env]:
    runs, port = training_run_server
    settings = Settings(
        data_dir=tmp_path,
        database_url=sqlite_url,
        nats_url=nats_url,
        jwt_secret=JWT_SECRET,
        training_run_addr=f"127.0.0.1:{port}",
        log_json=False,
        consumer_max_deliver=MAX_DELIVER,
        retry_backoff_seconds=[0.05],
    )
    names = StreamNames(jobs=f"TMJ_{unique}", events=f"TME_{unique}", prefix=f"tm{unique}")
    store = ArtifactStore(f"file://{tmp_path / 'artifacts'}")
    app = await build_app(settings, address="127.0.0.1:0", names=names, artifacts=store)
    try:
        yield Env(app, store, names, None, runs, nats_url)  # type: ignore[arg-type]
    finally:
        await app.close()


async def test_a_completion_that_can_never_be_registered_is_dead_lettered(
    fast_env: Env, tmp_path: Path
) -> None:
    nc = await connect(fast_env.nats_url, "registrar-poison-test")
    js = nc.jetstream()
    try:
        poison_id, good_id = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
        poison = fast_env.completed_event(poison_id)
        # The checkpoint's key holds a directory: reading it fails on every delivery (unlike a missing
        # checkpoint, which is answered with registration_failed at once).
        checkpoint = tmp_path / "artifacts" / poison.completed.artifacts[0].uri
        checkpoint.unlink()
        checkpoint.mkdir()
        labels = {"consumer": DURABLE, "reason": "handler_failed"}
        before = REGISTRY.get_sample_value("raven_dead_lettered_messages_total", labels) or 0.0
        await js.publish(fast_env.names.run_events_subject(poison_id), poison.SerializeToString())
        await js.publish(
            fast_env.names.run_events_subject(good_id), fast_env.completed_event(good_id).SerializeToString()
        )
        await replies(js, fast_env, good_id, "model_registered")  # the registrar is not blocked

        stream = fast_env.names.dead_letters_stream
        deadline = time.monotonic() + 20
        while (await js.stream_info(stream)).state.messages < 1:
            assert time.monotonic() < deadline, "no dead letter"
            await asyncio.sleep(0.1)
        record = dead_letters_pb2.DeadLetter.FromString((await js.get_msg(stream, 1)).data)
        assert (record.consumer, record.reason, record.deliveries) == (DURABLE, "handler_failed", MAX_DELIVER)
        assert (record.run_id, record.attempt) == (poison_id, 1)
        assert "IsADirectoryError" in record.error and record.payload == poison.SerializeToString()
        assert REGISTRY.get_sample_value("raven_dead_lettered_messages_total", labels) == before + 1
        events = await replies(js, fast_env, poison_id, "completed")
        assert [e.WhichOneof("payload") for e in events] == ["completed"]  # no model, no answer: training_run
    finally:
        await nc.close()
