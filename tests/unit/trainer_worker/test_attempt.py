"""The attempt coroutine alone, with fakes that subclass its ports: claim, steps, outcome, settlement."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from common.artifacts import ArtifactStore
from common.proto.raven.v1 import events_pb2, training_run_pb2, types_pb2
from services.trainer_worker.domain.dataset import PreparedDataset
from services.trainer_worker.domain.job import Settlement, StopReason
from services.trainer_worker.domain.problems import DatasetInvalid
from services.trainer_worker.service_layer.attempt import AttemptConfig, Attempts, AttemptServices
from services.trainer_worker.service_layer.context import AttemptContext
from services.trainer_worker.service_layer.ports import (
    CancelCallback,
    CheckpointStore,
    ClaimRefused,
    ControlChannel,
    JobDelivery,
    Lease,
    LeaseLost,
    Reporter,
    RunService,
)
from services.trainer_worker.service_layer.steps import Evaluated, JobSteps, Trained

pytestmark = pytest.mark.timeout(20)


class FakeDelivery(JobDelivery):
    def __init__(self, job: events_pb2.TrainingJob | None) -> None:
        self.job = job
        self.settled: str | None = None

    def parse(self) -> events_pb2.TrainingJob:
        if self.job is None:
            raise ValueError("job payload is not a TrainingJob")
        return self.job

    async def in_progress(self) -> None:
        pass

    async def ack(self) -> None:
        self.settled = self.settled or "ack"

    async def nak(self, delay: float | None = None) -> None:
        self.settled = self.settled or "nak"

    async def term(self) -> None:
        self.settled = self.settled or "term"

    async def fail(self, error: str) -> None:
        self.settled = self.settled or "nak"

    async def reject(self, error: str) -> None:
        self.settled = self.settled or "term"


class FakeRunService(RunService):
    def __init__(self, *, refuse: bool = False, lose_lease: bool = False) -> None:
        self.refuse = refuse
        self.lose_lease = lose_lease
        self.releases: list[str] = []

    async def claim(self, run_id: str, job_attempt: int) -> Lease:
        if self.refuse:
            raise ClaimRefused("FAILED_PRECONDITION: run is CANCELLED")
        run = training_run_pb2.TrainingRun(display_name="unit run")
        return Lease(run_id, job_attempt, 0.05, 5.0, "", run)

    async def heartbeat(self, lease: Lease, latest_checkpoint: str = "") -> tuple[bool, float]:
        if self.lose_lease:
            raise LeaseLost("ABORTED: another attempt owns the run")
        return False, 5.0

    async def release(self, lease: Lease, reason: str, latest_checkpoint: str = "") -> None:
        self.releases.append(reason)


class FakeReporter(Reporter):
    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.phases: list[int] = []
        self.failure: types_pb2.Failure | None = None
        self.completion: events_pb2.RunCompleted | None = None

    async def started(self, worker_id: str, device: str, resumed_from: str = "") -> None:
        self.kinds.append("started")

    async def phase(self, phase: types_pb2.RunPhase) -> None:
        self.phases.append(phase)

    async def progress(self, snapshot: types_pb2.ProgressSnapshot, *, force: bool = False) -> bool:
        self.kinds.append("progress")
        return True

    async def log(self, line: str) -> None:
        self.kinds.append("log")

    async def flush_logs(self, *, force: bool = True) -> None:
        pass

    async def completed(self, payload: events_pb2.RunCompleted) -> None:
        self.kinds.append("completed")
        self.completion = payload

    async def failed(self, failure: types_pb2.Failure) -> None:
        self.kinds.append("failed")
        self.failure = failure

    async def cancelled(self, reason: str, last_checkpoint: str = "") -> None:
        self.kinds.append("cancelled")


class FakeCheckpoints(CheckpointStore):
    def __init__(self) -> None:
        self.latest_key = ""
        self.deleted = False

    async def download(self, key: str, dest_dir: Path) -> Path:
        raise FileNotFoundError(key)

    async def sync(self, work_dir: Path) -> str:
        return self.latest_key

    async def acknowledged(self, key: str) -> None:
        pass

    async def delete_all(self) -> None:
        self.deleted = True


class FakeControl(ControlChannel):
    def __init__(self) -> None:
        self.callbacks: dict[str, CancelCallback] = {}

    async def subscribe(self, run_id: str, on_cancel: CancelCallback) -> Callable[[], Awaitable[None]]:
        self.callbacks[run_id] = on_cancel

        async def unsubscribe() -> None:
            self.callbacks.pop(run_id, None)

        return unsubscribe


class FakeSteps(JobSteps):
    """Instant steps; ``hold`` keeps training going until a stop request (like the real child)."""

    def __init__(self, tmp: Path, *, fail_prepare: bool = False, hold: bool = False) -> None:
        super().__init__(
            artifacts=ArtifactStore(f"file://{tmp / 'artifacts'}"), dataset_root="file:///nowhere"
        )
        self.tmp = tmp
        self.fail_prepare = fail_prepare
        self.hold = hold
        self.training = asyncio.Event()

    async def prepare(self, job: events_pb2.TrainingJob, data_dir: Path) -> PreparedDataset:
        if self.fail_prepare:
            raise DatasetInvalid("dataset 'd' is invalid (1 problem)", ["annotation 3: unknown image 9"])
        manifest = self.tmp / "manifest.json"
        manifest.write_text("{}")
        return PreparedDataset(self.tmp, manifest, manifest, None, ("bag",), "sha", manifest, {})

    async def train(self, ctx: AttemptContext, prepared: PreparedDataset) -> Trained | None:
        self.training.set()
        if self.hold:
            await ctx.stop_event.wait()
            return None
        await ctx.reporter.log("epoch 1 done")
        config = self.tmp / "config.json"
        config.write_text("{}")
        return Trained(config, config, None, 1.0, 1, {"val": {"bbox_mAP": 0.5}}, config)

    async def evaluate(self, trained: Trained) -> Evaluated:
        assert trained.metrics_path is not None
        return Evaluated(types_pb2.EvaluationResults(best_epoch=1), trained.metrics_path, None)

    async def upload(
        self, run_id: str, attempt: int, prepared: PreparedDataset, trained: Trained, evaluated: Evaluated
    ) -> list[types_pb2.Artifact]:
        return [types_pb2.Artifact(kind=types_pb2.CHECKPOINT, uri=f"runs/{run_id}/attempt-{attempt}/x.pth")]


class World:
    def __init__(self, tmp: Path, run_service: FakeRunService, steps: FakeSteps) -> None:
        self.run_service = run_service
        self.steps = steps
        self.reporter = FakeReporter()
        self.checkpoints = FakeCheckpoints()
        self.control = FakeControl()
        self.attempts = Attempts(
            AttemptServices(
                run_service=run_service, control=self.control, steps=steps,
                reporter_for=lambda run_id, attempt: self.reporter,
                checkpoints_for=lambda run_id, attempt: self.checkpoints,
                config=AttemptConfig(worker_id="w1", work_root=tmp / "work", checkpoint_poll_seconds=0.05),
            )
        )  # fmt: skip


def job(run_id: str = "r1") -> events_pb2.TrainingJob:
    return events_pb2.TrainingJob(
        run_id=run_id, attempt=1, dataset="d", owner="alice", config_sha256="c0ffee"
    )


async def test_a_job_runs_prepare_train_evaluate_upload_and_is_acked_after_completed(tmp_path: Path) -> None:
    world = World(tmp_path, FakeRunService(), FakeSteps(tmp_path))
    delivery = FakeDelivery(job())
    assert await world.attempts.run(delivery, "cpu") == Settlement.ACK
    assert delivery.settled == "ack"
    assert world.reporter.kinds == ["started", "log", "completed"]
    assert world.reporter.phases == [
        types_pb2.PREPARING_DATASET, types_pb2.TRAINING, types_pb2.EVALUATING, types_pb2.UPLOADING
    ]  # fmt: skip
    completed = world.reporter.completion
    assert completed is not None and completed.display_name == "unit run" and completed.owner == "alice"
    assert list(completed.class_names) == ["bag"] and completed.evaluation.best_epoch == 1
    assert world.checkpoints.deleted and not world.attempts.active
    assert not (tmp_path / "work" / "r1").exists()


async def test_unreadable_and_refused_jobs_are_terminated(tmp_path: Path) -> None:
    world = World(tmp_path, FakeRunService(refuse=True), FakeSteps(tmp_path))
    unreadable, refused = FakeDelivery(None), FakeDelivery(job())
    assert await world.attempts.run(unreadable, "cpu") == Settlement.TERM
    assert await world.attempts.run(refused, "cpu") == Settlement.TERM
    assert (unreadable.settled, refused.settled) == ("term", "term")
    assert world.reporter.kinds == []


async def test_a_step_failure_is_reported_classified_and_acked(tmp_path: Path) -> None:
    world = World(tmp_path, FakeRunService(), FakeSteps(tmp_path, fail_prepare=True))
    assert await world.attempts.run(FakeDelivery(job()), "cpu") == Settlement.ACK
    failure = world.reporter.failure
    assert failure is not None and failure.kind == types_pb2.INVALID_DATASET
    assert list(failure.details) == ["annotation 3: unknown image 9"]


async def test_a_lost_lease_stops_training_and_reports_nothing(tmp_path: Path) -> None:
    world = World(tmp_path, FakeRunService(lose_lease=True), FakeSteps(tmp_path, hold=True))
    assert await world.attempts.run(FakeDelivery(job()), "cpu") == Settlement.NAK
    assert world.reporter.kinds == ["started"]


async def test_a_cancel_request_reports_cancelled(tmp_path: Path) -> None:
    world = World(tmp_path, FakeRunService(), FakeSteps(tmp_path, hold=True))
    running = asyncio.create_task(world.attempts.run(FakeDelivery(job()), "cpu"))
    await asyncio.wait_for(world.steps.training.wait(), 5)
    world.control.callbacks["r1"](2, "not this attempt")
    world.control.callbacks["r1"](1, "user asked")
    assert await running == Settlement.ACK
    assert world.reporter.kinds == ["started", "cancelled"]


async def test_shutdown_releases_the_lease_and_hands_the_job_back(tmp_path: Path) -> None:
    world = World(tmp_path, FakeRunService(), FakeSteps(tmp_path, hold=True))
    running = asyncio.create_task(world.attempts.run(FakeDelivery(job()), "cpu"))
    await asyncio.wait_for(world.steps.training.wait(), 5)
    world.attempts.stop_all(StopReason.SHUTDOWN, "worker shutting down")
    assert await running == Settlement.NAK
    assert world.run_service.releases == ["worker shutting down"]
    assert world.reporter.kinds == ["started"]
