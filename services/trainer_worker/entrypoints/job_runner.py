"""One job from delivery to settlement: claim, lease upkeep, the steps, the terminal event, ack/nak/term.

The steps themselves (prepare, train, evaluate, upload) live in ``steps.py``; this module only orchestrates
them and applies ``domain/job.py``'s rules about stopping, publishing and settling.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nats.aio.client import Client as NATS

from common.logging import get_logger
from common.nats_streams import StreamNames
from common.proto.raven.v1 import events_pb2, types_pb2
from services.trainer_worker.adapters import metrics
from services.trainer_worker.adapters.checkpoints import CheckpointSync
from services.trainer_worker.adapters.events import EventPublishFailed, RunEventPublisher
from services.trainer_worker.adapters.jobs import JobMessage
from services.trainer_worker.adapters.training_run_client import (
    ClaimRefused,
    Lease,
    LeaseLost,
    TrainingRunClient,
    TrainingRunUnavailable,
)
from services.trainer_worker.domain.job import (
    LeaseClock,
    Settlement,
    StopReason,
    StopSignal,
    settlement_after,
)
from services.trainer_worker.entrypoints.results import classify_failure
from services.trainer_worker.entrypoints.steps import JobSteps

log = get_logger("trainer_worker.job")
T = TypeVar("T")

CHECKPOINT_POLL_SECONDS = 2.0


class Stopped(Exception):
    """A stop request interrupted a step."""


@dataclass
class JobContext:
    """Everything one attempt's steps need; the steps read it, the runner owns it."""

    job: events_pb2.TrainingJob
    lease: Lease
    device: str
    work_dir: Path  # scratch for this attempt, removed at the end
    publisher: RunEventPublisher
    checkpoints: CheckpointSync
    worker_id: str
    stop: StopSignal = field(default_factory=StopSignal)
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    checkpoint_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    resume_from: Path | None = None
    phase: int = types_pb2.RUN_PHASE_UNSPECIFIED

    @property
    def run_id(self) -> str:
        return self.job.run_id

    @property
    def train_dir(self) -> Path:
        return self.work_dir / "train"

    async def enter_phase(self, phase: int) -> None:
        """Publishes a phase change once (the runner and the training child both announce EVALUATING)."""
        if phase != self.phase:
            self.phase = phase
            await self.publisher.phase(phase)  # type: ignore[arg-type]

    def sync_checkpoint_soon(self) -> None:
        self.checkpoint_wakeup.set()

    def request_stop(self, reason: StopReason, detail: str = "") -> None:
        if self.stop.request(reason, detail):
            log.info("stop requested", run_id=self.run_id, reason=reason.value, detail=detail)
        self.stop_event.set()


@dataclass
class RunnerConfig:
    worker_id: str
    work_root: Path
    ack_wait: float = 120.0
    checkpoint_poll_seconds: float = CHECKPOINT_POLL_SECONDS


class JobRunner:
    """Runs jobs one at a time per call of ``run``; the worker calls it once per fetched message."""

    def __init__(
        self,
        *,
        client: TrainingRunClient,
        nc: NATS,
        names: StreamNames,
        steps: JobSteps,
        publisher_factory: Callable[[str, int], RunEventPublisher],
        checkpoints_factory: Callable[[str, int], CheckpointSync],
        config: RunnerConfig,
    ) -> None:
        self._client = client
        self._nc = nc
        self._names = names
        self._steps = steps
        self._publisher_factory = publisher_factory
        self._checkpoints_factory = checkpoints_factory
        self._config = config
        self.active: dict[str, JobContext] = {}
        self._stopped_all: tuple[StopReason, str] | None = None

    def stop_all(self, reason: StopReason, detail: str = "") -> None:
        """Stops every running job, and every job claimed from now on (a claim may be in flight)."""
        self._stopped_all = (reason, detail)
        for ctx in list(self.active.values()):
            ctx.request_stop(reason, detail)

    async def run(self, msg: JobMessage, device: str) -> Settlement:
        """Works one message to its settlement; never raises for a bad job."""
        try:
            job = msg.parse()
        except ValueError as exc:
            log.error("unreadable job dead-lettered", error=str(exc))
            await msg.reject(str(exc))
            return Settlement.TERM
        try:
            lease = await self._client.claim(job.run_id, job.attempt)
        except ClaimRefused as exc:
            log.info("claim refused; job terminated", run_id=job.run_id, attempt=job.attempt, reason=str(exc))
            await msg.term()
            return Settlement.TERM
        except TrainingRunUnavailable as exc:
            log.warning("claim failed; job back to the queue", run_id=job.run_id, error=str(exc))
            await msg.fail(f"claiming the run failed: {exc}")
            return Settlement.NAK if msg.settled == "nak" else Settlement.TERM
        ctx = JobContext(
            job=job,
            lease=lease,
            device=device,
            work_dir=self._config.work_root / job.run_id / f"attempt-{lease.attempt}",
            publisher=self._publisher_factory(job.run_id, lease.attempt),
            checkpoints=self._checkpoints_factory(job.run_id, lease.attempt),
            worker_id=self._config.worker_id,
        )
        self.active[job.run_id] = ctx
        if self._stopped_all is not None:
            ctx.request_stop(*self._stopped_all)
        metrics.JOBS_ACTIVE.inc()
        try:
            return await self._run_claimed(msg, ctx)
        finally:
            metrics.JOBS_ACTIVE.dec()
            self.active.pop(job.run_id, None)
            await asyncio.to_thread(_remove_scratch, ctx.work_dir)

    async def _run_claimed(self, msg: JobMessage, ctx: JobContext) -> Settlement:
        log.info(
            "job claimed", run_id=ctx.run_id, attempt=ctx.lease.attempt, resume=ctx.lease.resume_checkpoint
        )
        background = [
            asyncio.create_task(self._heartbeats(ctx), name=f"heartbeat-{ctx.run_id}"),
            asyncio.create_task(self._in_progress(msg), name=f"in-progress-{ctx.run_id}"),
            asyncio.create_task(self._checkpoint_uploads(ctx), name=f"checkpoints-{ctx.run_id}"),
        ]
        control = await self._nc.subscribe(
            self._names.run_control_subject(ctx.run_id), cb=self._on_control(ctx)
        )
        try:
            published = await self._finish(ctx, await self._work(ctx))
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            with contextlib.suppress(Exception):
                await control.unsubscribe()
        if ctx.stop.reason is StopReason.SHUTDOWN and not published:
            await self._release(ctx)
        settlement = settlement_after(published)
        await self._settle(msg, settlement)
        metrics.JOBS_SETTLED.labels(settlement.value).inc()
        log.info("job settled", run_id=ctx.run_id, settlement=settlement.value, stop=ctx.stop.reason)
        return settlement

    async def _work(self, ctx: JobContext) -> events_pb2.RunCompleted | types_pb2.Failure | None:
        """Runs the steps; returns the completed payload, a failure, or None when stopped."""
        started = time.monotonic()
        try:
            resumed_from = await self._resume_checkpoint(ctx)
            await ctx.publisher.started(ctx.worker_id, ctx.device, resumed_from)
            await ctx.enter_phase(types_pb2.PREPARING_DATASET)
            prepared = await self._step(ctx, self._steps.prepare(ctx))
            await ctx.enter_phase(types_pb2.TRAINING)
            trained = await self._steps.train(ctx, prepared)
            if ctx.stop.requested or trained is None:
                return None
            await ctx.enter_phase(types_pb2.EVALUATING)
            evaluated = await self._step(ctx, self._steps.evaluate(ctx, prepared, trained))
            await ctx.enter_phase(types_pb2.UPLOADING)
            return await self._step(
                ctx, self._steps.upload(ctx, prepared, trained, evaluated, time.monotonic() - started)
            )
        except Stopped:
            return None
        except Exception as exc:
            if ctx.stop.reason is StopReason.LEASE_LOST:
                return None
            failure = classify_failure(exc)
            log.warning(
                "job failed",
                run_id=ctx.run_id,
                kind=types_pb2.FailureKind.Name(failure.kind),
                error=failure.message,
                exc_info=failure.kind == types_pb2.INTERNAL_ERROR,
            )
            return failure

    async def _resume_checkpoint(self, ctx: JobContext) -> str:
        """Downloads the checkpoint training_run handed out; a missing one means training from the start."""
        key = ctx.lease.resume_checkpoint
        if not key:
            return ""
        try:
            ctx.resume_from = await self._step(ctx, ctx.checkpoints.download(key, ctx.work_dir / "resume"))
        except Stopped:
            raise
        except Exception as exc:
            log.warning(
                "resume checkpoint unusable; training from the start",
                run_id=ctx.run_id,
                key=key,
                error=str(exc),
            )
            return ""
        return key

    async def _step(self, ctx: JobContext, awaitable: Awaitable[T]) -> T:
        """Awaits a step unless a stop request comes first (the step is then abandoned)."""
        if ctx.stop.requested:
            _close(awaitable)
            raise Stopped()
        task = asyncio.ensure_future(awaitable)
        stopper = asyncio.create_task(ctx.stop_event.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise Stopped()

    async def _finish(
        self, ctx: JobContext, result: events_pb2.RunCompleted | types_pb2.Failure | None
    ) -> bool:
        """Publishes the terminal event the result calls for; returns whether one was durably stored."""
        if not ctx.stop.may_publish_terminal:
            log.warning("lease lost: no outcome published", run_id=ctx.run_id, detail=ctx.stop.detail)
            return False
        try:
            if isinstance(result, events_pb2.RunCompleted):
                await ctx.publisher.completed(result)
                metrics.OUTCOMES.labels("completed").inc()
                await self._quietly(ctx.checkpoints.delete_all(), "delete checkpoints")
                return True
            if isinstance(result, types_pb2.Failure):
                await ctx.publisher.failed(result)
                metrics.OUTCOMES.labels(types_pb2.FailureKind.Name(result.kind)).inc()
                return True
            if ctx.stop.reason is StopReason.CANCELLED:
                last = await self._quietly(ctx.checkpoints.sync(ctx.train_dir), "upload last checkpoint")
                await ctx.publisher.cancelled(
                    ctx.stop.detail or "cancelled", last or ctx.checkpoints.latest_key
                )
                metrics.OUTCOMES.labels("cancelled").inc()
                return True
            if ctx.stop.reason is StopReason.SHUTDOWN:
                await ctx.publisher.flush_logs()
                return False
            await ctx.publisher.failed(
                types_pb2.Failure(  # stopped without a reason: a bug, say so
                    kind=types_pb2.INTERNAL_ERROR,
                    message="training ended without a result; the run can be retried",
                )
            )
            return True
        except EventPublishFailed as exc:
            log.error(
                "terminal event not stored; job goes back to the queue", run_id=ctx.run_id, error=str(exc)
            )
            return False

    async def _release(self, ctx: JobContext) -> None:
        """Worker shutdown: hand the lease back with the newest checkpoint; another worker resumes at once."""
        latest = await self._quietly(ctx.checkpoints.sync(ctx.train_dir), "upload checkpoint before release")
        try:
            await self._client.release(
                ctx.lease, "worker shutting down", latest or ctx.checkpoints.latest_key
            )
            log.info("lease released", run_id=ctx.run_id, checkpoint=latest)
        except (LeaseLost, TrainingRunUnavailable) as exc:
            log.warning("release failed; the lease will expire instead", run_id=ctx.run_id, error=str(exc))

    async def _settle(self, msg: JobMessage, settlement: Settlement) -> None:
        try:
            if settlement is Settlement.ACK:
                await msg.ack()
            elif settlement is Settlement.TERM:
                await msg.term()
            else:
                await msg.nak()
        except Exception as exc:
            log.warning("job message not settled", settlement=settlement.value, error=str(exc))

    async def _heartbeats(self, ctx: JobContext) -> None:
        lease = ctx.lease
        clock = LeaseClock(lease.heartbeat_seconds, time.monotonic() + lease.lease_seconds_left)
        failed = False
        while True:
            await asyncio.sleep(clock.next_beat_in(time.monotonic(), failed))
            key = ctx.checkpoints.latest_key
            try:
                cancel, left = await self._client.heartbeat(lease, key)
            except LeaseLost as exc:
                ctx.request_stop(StopReason.LEASE_LOST, str(exc))
                return
            except TrainingRunUnavailable as exc:
                failed = True
                log.warning("heartbeat failed", run_id=ctx.run_id, error=str(exc))
                if clock.expired(time.monotonic()):
                    ctx.request_stop(StopReason.LEASE_LOST, "lease expired without a successful heartbeat")
                    return
                continue
            failed = False
            clock.renewed(time.monotonic(), left)
            await self._quietly(ctx.checkpoints.acknowledged(key), "prune checkpoints")
            if cancel:
                ctx.request_stop(StopReason.CANCELLED, "cancel requested")

    async def _in_progress(self, msg: JobMessage) -> None:
        interval = max(1.0, min(30.0, self._config.ack_wait / 3))
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _checkpoint_uploads(self, ctx: JobContext) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.checkpoint_wakeup.wait(), self._config.checkpoint_poll_seconds)
            ctx.checkpoint_wakeup.clear()
            if ctx.stop.requested:
                return  # the final sync on stop takes over
            await self._quietly(ctx.checkpoints.sync(ctx.train_dir), "upload checkpoint")

    def _on_control(self, ctx: JobContext) -> Callable[[Any], Awaitable[None]]:
        async def on_message(raw: Any) -> None:
            control = events_pb2.RunControl()
            try:
                control.ParseFromString(raw.data)
            except Exception:
                log.warning("unreadable control message", run_id=ctx.run_id)
                return
            if control.cancel and control.attempt in (0, ctx.lease.attempt):
                ctx.request_stop(StopReason.CANCELLED, control.reason or "cancel requested")

        return on_message

    async def _quietly(self, awaitable: Awaitable[T], what: str) -> T | None:
        try:
            return await awaitable
        except Exception as exc:
            log.warning(f"{what} failed", error=str(exc))
            return None


def _remove_scratch(work_dir: Path) -> None:
    """Prepared data and local checkpoints go; what resume needs is in the artifact store already."""
    shutil.rmtree(work_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        work_dir.parent.rmdir()  # the run's directory, unless another attempt still works in it


def _close(awaitable: Awaitable[Any]) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()
