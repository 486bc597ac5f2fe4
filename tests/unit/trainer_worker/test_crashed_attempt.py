"""A crashed training child: the newest checkpoint is handed to training_run before the retryable failure."""

from __future__ import annotations

from pathlib import Path

from common.proto.raven.v1 import types_pb2
from services.trainer_worker.domain.dataset import PreparedDataset
from services.trainer_worker.domain.job import Settlement
from services.trainer_worker.service_layer.context import AttemptContext
from services.trainer_worker.service_layer.ports import Lease
from services.trainer_worker.service_layer.results import StepFailed
from services.trainer_worker.service_layer.steps import Trained
from tests.unit.trainer_worker.test_attempt import (
    FakeCheckpoints,
    FakeDelivery,
    FakeRunService,
    FakeSteps,
    World,
    job,
)

LAST = "runs/r1/checkpoints/attempt-1/epoch_2.pth"


class CrashingSteps(FakeSteps):
    async def train(self, ctx: AttemptContext, prepared: PreparedDataset) -> Trained | None:
        failure = types_pb2.Failure(kind=types_pb2.CHILD_CRASHED, message="killed by signal 9 (SIGKILL)")
        raise StepFailed(failure)


class UnsyncedCheckpoints(FakeCheckpoints):
    """The child's last epoch checkpoint is on disk but not uploaded yet."""

    async def sync(self, work_dir: Path) -> str:
        self.latest_key = LAST
        return LAST


class RecordingRunService(FakeRunService):
    def __init__(self) -> None:
        super().__init__()
        self.heartbeat_keys: list[str] = []

    async def heartbeat(self, lease: Lease, latest_checkpoint: str = "") -> tuple[bool, float]:
        self.heartbeat_keys.append(latest_checkpoint)
        return await super().heartbeat(lease, latest_checkpoint)


async def test_a_crashed_child_hands_its_newest_checkpoint_over_before_failing(tmp_path: Path) -> None:
    run_service = RecordingRunService()
    world = World(tmp_path, run_service, CrashingSteps(tmp_path))
    world.checkpoints = UnsyncedCheckpoints()

    assert await world.attempts.run(FakeDelivery(job()), "cpu") == Settlement.ACK

    assert world.reporter.failure is not None and world.reporter.failure.kind == types_pb2.CHILD_CRASHED
    assert LAST in run_service.heartbeat_keys  # resume_checkpoint of the retry


async def test_a_new_attempt_clears_what_a_killed_worker_left_of_the_run(tmp_path: Path) -> None:
    left = tmp_path / "work" / "r1" / "attempt-1" / "train"
    left.mkdir(parents=True)
    (left / "epoch_1.pth").write_bytes(b"x")
    world = World(tmp_path, FakeRunService(), FakeSteps(tmp_path))
    second = job()
    second.attempt = 2

    assert await world.attempts.run(FakeDelivery(second), "cpu") == Settlement.ACK
    assert not (tmp_path / "work" / "r1").exists()
