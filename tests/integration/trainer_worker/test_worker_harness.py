"""A worker under test: real nats-server, a real gRPC server for the three worker RPCs, a real artifact dir.

``LeaseServicer`` is a tiny in-memory training_run (Claim/Heartbeat/Release with attempt fencing, the codes
the real service answers). ``QuickSteps`` keeps the real dataset preparation and upload but replaces the
minutes-long training and evaluation with a few fake epochs that write checkpoint files and honour stop
requests the way the real training step must.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import empty_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from common.auth import Permission, TokenVerifier
from common.grpc_server import RunningServer, ServiceRegistration, create_server
from common.nats_streams import StreamNames
from common.proto.raven.v1 import events_pb2, training_run_pb2, training_run_pb2_grpc, types_pb2
from common.settings import Settings
from services.trainer_worker.bootstrap import WorkerApp, build_worker
from services.trainer_worker.domain.dataset import PreparedDataset
from services.trainer_worker.service_layer.context import AttemptContext
from services.trainer_worker.service_layer.steps import JobSteps, Trained
from tests.helpers import JWT_SECRET

SERVICE = "/raven.v1.TrainingRunService/"
HEARTBEAT_SECONDS = 0.2


@dataclass
class FakeRun:
    status: str = "PENDING"  # PENDING, RUNNING, CANCELLING, CANCELLED, SUCCEEDED
    attempt: int = 1  # like training_run: a run starts at attempt 1, a requeue adds one
    job: events_pb2.TrainingJob | None = None  # the last job published for the run
    worker_id: str = ""
    resume_checkpoint: str = ""
    latest_checkpoint: str = ""
    heartbeats: int = 0
    claims: list[int] = field(default_factory=list)
    releases: list[tuple[str, str]] = field(default_factory=list)  # (reason, latest_checkpoint)
    lose_lease: bool = False  # next heartbeat answers ABORTED (another attempt took over)
    claim_error: bool = False  # every claim answers INTERNAL: a job no worker can ever claim


class LeaseServicer(training_run_pb2_grpc.TrainingRunServiceServicer):
    def __init__(self) -> None:
        self.runs: dict[str, FakeRun] = {}
        # training_run's outbox relay publishes the next attempt's job after a requeue; the harness does it
        self.on_requeue: Callable[[str, FakeRun], Awaitable[None]] | None = None

    def _run(self, name: str) -> FakeRun | None:
        return self.runs.get(name.removeprefix("trainingRuns/"))

    async def ClaimTrainingRun(self, request, context):  # type: ignore[no-untyped-def]
        run = self._run(request.name)
        if run is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{request.name} not found")
        assert run is not None
        run.claims.append(request.job_attempt)
        if run.claim_error:
            await context.abort(grpc.StatusCode.INTERNAL, "claim fails every time")
        if run.status in ("CANCELLED", "SUCCEEDED", "CANCELLING"):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"run is {run.status}")
        if run.status == "RUNNING":
            await context.abort(grpc.StatusCode.ABORTED, "run is leased by another worker")
        if request.job_attempt != run.attempt:
            await context.abort(grpc.StatusCode.ABORTED, f"job attempt {request.job_attempt} is stale")
        run.status, run.worker_id = "RUNNING", request.worker_id
        expire = Timestamp()
        expire.FromNanoseconds(int((time.time() + 5.0) * 1e9))
        return training_run_pb2.ClaimTrainingRunResponse(
            training_run=training_run_pb2.TrainingRun(name=request.name, display_name="test run"),
            attempt=run.attempt,
            lease_expire_time=expire,
            heartbeat_interval=Duration(nanos=int(HEARTBEAT_SECONDS * 1e9)),
            resume_checkpoint=run.resume_checkpoint,
        )

    async def HeartbeatTrainingRun(self, request, context):  # type: ignore[no-untyped-def]
        run = self._run(request.name)
        if (
            run is None
            or run.lose_lease
            or request.attempt != run.attempt
            or run.status not in ("RUNNING", "CANCELLING")
        ):
            await context.abort(grpc.StatusCode.ABORTED, "lease lost: another attempt owns the run")
        assert run is not None
        run.heartbeats += 1
        if request.latest_checkpoint:
            run.latest_checkpoint = request.latest_checkpoint
        expire = Timestamp()
        expire.FromNanoseconds(int((time.time() + 5.0) * 1e9))
        return training_run_pb2.HeartbeatTrainingRunResponse(
            lease_expire_time=expire, cancel_requested=run.status == "CANCELLING"
        )

    async def ReleaseTrainingRun(self, request, context):  # type: ignore[no-untyped-def]
        run = self._run(request.name)
        if run is None or request.attempt != run.attempt:
            await context.abort(grpc.StatusCode.ABORTED, "stale attempt")
        assert run is not None
        run.releases.append((request.reason, request.latest_checkpoint))
        run.status, run.attempt = "PENDING", run.attempt + 1
        run.resume_checkpoint = request.latest_checkpoint or run.latest_checkpoint
        if self.on_requeue is not None:
            await self.on_requeue(request.name.removeprefix("trainingRuns/"), run)
        return empty_pb2.Empty()


async def start_lease_server() -> tuple[RunningServer, LeaseServicer]:
    servicer = LeaseServicer()
    registration = ServiceRegistration(
        add_to_server=training_run_pb2_grpc.add_TrainingRunServiceServicer_to_server,
        servicer=servicer,
        service_name=training_run_pb2.DESCRIPTOR.services_by_name["TrainingRunService"].full_name,
        required_permissions={
            SERVICE + m: Permission.WORKER
            for m in ("ClaimTrainingRun", "HeartbeatTrainingRun", "ReleaseTrainingRun")
        },
    )
    server = await create_server([registration], TokenVerifier(secret=JWT_SECRET), address="127.0.0.1:0")
    return server, servicer


class QuickSteps(JobSteps):
    """Real prepare and upload; training is ``epochs`` fake epochs of ``epoch_seconds`` each."""

    def __init__(self, *args, epochs: int = 3, epoch_seconds: float = 0.15, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.epochs = epochs
        self.epoch_seconds = epoch_seconds
        self.resumed_from: dict[str, Path | None] = {}

    async def train(self, ctx: AttemptContext, prepared: PreparedDataset) -> Trained | None:
        ctx.train_dir.mkdir(parents=True, exist_ok=True)
        self.resumed_from[ctx.run_id] = ctx.resume_from
        first = 1
        if ctx.resume_from is not None:
            first = int(ctx.resume_from.read_text().split()[1]) + 1
        started = time.monotonic()
        for epoch in range(first, self.epochs + 1):
            try:
                await asyncio.wait_for(ctx.stop_event.wait(), self.epoch_seconds)
                return None  # stopped: the last epoch's checkpoint is on disk
            except TimeoutError:
                pass
            checkpoint = ctx.train_dir / f"epoch_{epoch}.pth"
            checkpoint.write_text(f"epoch {epoch}\n")
            (ctx.train_dir / "last_checkpoint").write_text(str(checkpoint))
            await ctx.reporter.log(f"epoch {epoch} done")
            await ctx.reporter.progress(
                types_pb2.ProgressSnapshot(
                    phase=types_pb2.TRAINING,
                    epoch=epoch,
                    max_epochs=self.epochs,
                    iter=epoch * 10,
                    max_iters=self.epochs * 10,
                    losses=[types_pb2.Loss(name="loss", value=1.0 / epoch)],
                ),
                force=True,
            )
        best = ctx.train_dir / "best_coco_bbox_mAP_epoch_1.pth"
        best.write_text("best weights\n")
        config = ctx.train_dir / "config.py"
        config.write_text("model = dict(type='Fake')\n")
        log = ctx.train_dir / "train.log"
        log.write_text("fake training log\n")
        val = {"bbox_mAP": 0.5, "bbox_mAP_50": 0.8, "per_class_ap": {c: 0.5 for c in prepared.class_names}}
        metrics = {
            "val": val,
            "test": None,
            "best_epoch": 1,
            "history": [{"epoch": e, "train_loss": 1.0 / e} for e in range(1, self.epochs + 1)],
        }
        metrics_path = ctx.train_dir / "metrics.json"
        metrics_path.write_text(json.dumps(metrics))
        return Trained(
            best_checkpoint=best, config_path=config, log_path=log, seconds=time.monotonic() - started,
            epochs=self.epochs, metrics=metrics, metrics_path=metrics_path, parameter_count=123,
        )  # fmt: skip


@dataclass
class Harness:
    settings: Settings
    names: StreamNames
    servicer: LeaseServicer
    app: WorkerApp
    steps: QuickSteps
    task: asyncio.Task[None]

    @property
    def js(self):  # type: ignore[no-untyped-def]
        return self.app.nc.jetstream()

    async def publish_job(self, run_id: str, dataset: str, attempt: int = 1) -> None:
        job = events_pb2.TrainingJob(
            run_id=run_id,
            attempt=attempt,
            dataset=dataset,
            model_template="fake",
            owner="alice",
            config_sha256="c0ffee",
        )
        job.config.update({"model": {"type": "Fake"}})
        await self.publish(job)

    async def publish(self, job: events_pb2.TrainingJob) -> None:
        """Publishes a job the way training_run's outbox relay does (and registers the run if new)."""
        self.servicer.runs.setdefault(job.run_id, FakeRun()).job = job
        await self.js.publish(
            self.names.jobs_subject,
            job.SerializeToString(),
            headers={"Nats-Msg-Id": f"{job.run_id}:{job.attempt}"},
        )

    async def events(self, run_id: str) -> list[events_pb2.RunEvent]:
        info = await self.js.stream_info(self.names.events)
        found = []
        subject = self.names.run_events_subject(run_id)
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                raw = await self.js.get_msg(self.names.events, seq)
            except Exception:  # a gap in the sequence (deleted message)
                continue
            if raw.subject == subject:
                event = events_pb2.RunEvent()
                event.ParseFromString(raw.data)
                found.append(event)
        return found

    async def kinds(self, run_id: str) -> list[str]:
        return [e.WhichOneof("payload") or "" for e in await self.events(run_id)]

    async def jobs_left(self) -> int:
        return int((await self.js.stream_info(self.names.jobs)).state.messages)


async def eventually(check: Callable[[], object], within: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


async def start_worker(
    settings: Settings, names: StreamNames, servicer: LeaseServicer, steps: QuickSteps
) -> Harness:
    app = await build_worker(
        settings, steps=steps, ack_wait=5.0, fetch_timeout=0.2, checkpoint_poll_seconds=0.05, gpus=0
    )
    task = asyncio.create_task(app.worker.run())
    harness = Harness(settings=settings, names=names, servicer=servicer, app=app, steps=steps, task=task)

    async def requeue(run_id: str, run: FakeRun) -> None:
        assert run.job is not None
        job = events_pb2.TrainingJob()
        job.CopyFrom(run.job)
        job.attempt = run.attempt
        await harness.publish(job)

    servicer.on_requeue = requeue
    return harness
