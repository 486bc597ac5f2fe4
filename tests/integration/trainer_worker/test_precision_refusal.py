"""Issue 17: a CPU worker refuses an AMP run before training: the run's failure names the precision and the
device (real NATS, the worker's real steps, a lease stand-in as in test_worker_training)."""

from __future__ import annotations

import pytest

from common.mmdet_config import HyperParams, build_config
from common.proto.raven.v1 import events_pb2, types_pb2
from services.trainer_worker.domain.job import Settlement
from tests.integration.trainer_worker.test_worker_harness import eventually
from tests.integration.trainer_worker.test_worker_training import TEMPLATE, env, real_worker

__all__ = ["env"]  # the fixture, imported for the test here
pytestmark = [pytest.mark.timeout(300)]


async def test_a_cpu_worker_refuses_mixed_precision_naming_its_device(env: dict[str, object]) -> None:
    h = await real_worker(env)
    hp = HyperParams(epochs=1, batch_size=2, image_size=64, val_interval=1, precision=types_pb2.AMP_FP16)
    resolved = build_config(TEMPLATE, [], hp)
    assert resolved.data["optim_wrapper"]["type"] == "AmpOptimWrapper"
    amp = types_pb2.Hyperparameters(precision=types_pb2.AMP_FP16)
    job = events_pb2.TrainingJob(run_id="run-amp", attempt=1, dataset="waste", model_template=TEMPLATE,
                                 owner="alice", config_sha256=resolved.sha256,
                                 hyperparameters=amp)  # fmt: skip
    job.config.update(resolved.data)
    await h.publish(job)
    await eventually(lambda: h.app.worker.settlements, within=120, what="the job settled")
    assert h.app.worker.settlements == [Settlement.ACK]
    events = await h.events("run-amp")
    failed = events[-1]
    assert failed.WhichOneof("payload") == "failed", events[-1]
    assert failed.failed.failure.kind == types_pb2.INVALID_CONFIG
    assert "AMP_FP16 needs a CUDA GPU, but this worker trains on cpu" in failed.failed.failure.message
    phases = [e.phase_changed.phase for e in events if e.HasField("phase_changed")]
    assert types_pb2.EVALUATING not in phases and not any(e.HasField("progress") for e in events)
