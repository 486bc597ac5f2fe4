"""One attempt of a training job, from delivery to settlement: claim the run, keep the lease, run the steps
(prepare → train → evaluate → upload), report the outcome, settle the job message.

``run_attempt`` is the use case; it talks to the outside only through ``ports.py`` and ``JobSteps``, which
``bootstrap.py`` wires. ``domain/job.py`` holds the rules it applies about stopping, reporting and settling.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from common.failures import FailureKind
from common.logging import get_logger
from common.proto.raven.v1 import events_pb2, types_pb2
from common.tasks import cancel_and_wait
from services.trainer_worker.adapters import metrics
from services.trainer_worker.domain.job import Settlement, StopReason, settlement_after
from services.trainer_worker.service_layer import lease
from services.trainer_worker.service_layer.context import AttemptContext
from services.trainer_worker.service_layer.ports import (
    CheckpointStore,
    ClaimRefused,
    ControlChannel,
    EventPublishFailed,
    JobDelivery,
    Reporter,
    RunService,
    TrainingRunUnavailable,
)
from services.trainer_worker.service_layer.results import classify_failure
from services.trainer_worker.service_layer.steps import JobSteps, completed_payload

log = get_logger("trainer_worker.job")
T = TypeVar("T")
Outcome = events_pb2.RunCompleted | types_pb2.Failure | None  # None: stopped before an outcome

CHECKPOINT_POLL_SECONDS = 2.0
BACKGROUND_STOP_SECONDS = 10.0


class Stopped(Exception):
    """A stop request interrupted a step."""


@dataclass(frozen=True)
class AttemptConfig:
    worker_id: str
    work_root: Path
    ack_wait: float = 120.0
    checkpoint_poll_seconds: float = CHECKPOINT_POLL_SECONDS


@dataclass(frozen=True)
class AttemptServices:
    """What an attempt talks to; ``reporter_for``/``checkpoints_for`` take (run id, attempt number)."""

    run_service: RunService
    control: ControlChannel
    steps: JobSteps
    reporter_for: Callable[[str, int], Reporter]
    checkpoints_for: Callable[[str, int], CheckpointStore]
    config: AttemptConfig


class Attempts:
    """The attempts running on this worker: ``run`` one per delivered job, ``stop_all`` on shutdown."""

    def __init__(self, services: AttemptServices) -> None:
        self.services = services
        self.active: dict[str, AttemptContext] = {}
        self._stopped_all: tuple[StopReason, str] | None = None

    async def run(self, delivery: JobDelivery, device: str) -> Settlement:
        return await run_attempt(delivery, device, self.services, self)

    def started(self, ctx: AttemptContext) -> None:
        self.active[ctx.run_id] = ctx
        if self._stopped_all is not None:
            ctx.request_stop(*self._stopped_all)

    def ended(self, ctx: AttemptContext) -> None:
        self.active.pop(ctx.run_id, None)

    def stop_all(self, reason: StopReason, detail: str = "") -> None:
        """Stops every running attempt, and every one claimed from now on (a claim may be in flight)."""
        self._stopped_all = (reason, detail)
        for ctx in list(self.active.values()):
            ctx.request_stop(reason, detail)


async def run_attempt(
    delivery: JobDelivery, device: str, services: AttemptServices, attempts: Attempts
) -> Settlement:
    """Works one job message to its settlement; never raises for a bad job."""
    try:
        job = delivery.parse()
    except ValueError as exc:
        log.error("unreadable job dead-lettered", error=str(exc))
        await delivery.reject(str(exc))
        return Settlement.TERM
    try:
        granted = await services.run_service.claim(job.run_id, job.attempt)
    except ClaimRefused as exc:
        log.info("claim refused; job terminated", run_id=job.run_id, attempt=job.attempt, reason=str(exc))
        await delivery.term()
        return Settlement.TERM
    except TrainingRunUnavailable as exc:
        log.warning("claim failed; job back to the queue", run_id=job.run_id, error=str(exc))
        await delivery.fail(f"claiming the run failed: {exc}")
        return Settlement.NAK if delivery.settled == "nak" else Settlement.TERM
    config = services.config
    if job.run_id not in attempts.active:  # an earlier attempt still winding down here keeps its scratch
        stale = await asyncio.to_thread(remove_stale_attempts, config.work_root / job.run_id, granted.attempt)
        if stale:
            log.info("stale attempt directories removed", run_id=job.run_id, count=len(stale))
    ctx = AttemptContext(
        job=job,
        lease=granted,
        device=device,
        work_dir=config.work_root / job.run_id / f"attempt-{granted.attempt}",
        reporter=services.reporter_for(job.run_id, granted.attempt),
        checkpoints=services.checkpoints_for(job.run_id, granted.attempt),
        worker_id=config.worker_id,
    )
    attempts.started(ctx)
    metrics.JOBS_ACTIVE.inc()
    try:
        return await _run_claimed(delivery, ctx, services)
    finally:
        metrics.JOBS_ACTIVE.dec()
        attempts.ended(ctx)
        await asyncio.to_thread(_remove_scratch, ctx.work_dir)


async def _run_claimed(delivery: JobDelivery, ctx: AttemptContext, services: AttemptServices) -> Settlement:
    log.info("job claimed", run_id=ctx.run_id, attempt=ctx.lease.attempt, resume=ctx.lease.resume_checkpoint)
    config = services.config
    background = [
        asyncio.create_task(lease.heartbeats(ctx, services.run_service), name=f"heartbeat-{ctx.run_id}"),
        asyncio.create_task(
            lease.in_progress_acks(delivery, config.ack_wait), name=f"in-progress-{ctx.run_id}"
        ),
        asyncio.create_task(
            lease.checkpoint_uploads(ctx, config.checkpoint_poll_seconds), name=f"checkpoints-{ctx.run_id}"
        ),
    ]

    def on_cancel(attempt: int, reason: str) -> None:
        if attempt in (0, ctx.lease.attempt):
            ctx.request_stop(StopReason.CANCELLED, reason or "cancel requested")

    unsubscribe = await services.control.subscribe(ctx.run_id, on_cancel)
    try:
        outcome = await _work(ctx, services.steps)
        if isinstance(outcome, types_pb2.Failure) and FailureKind.from_number(outcome.kind).retryable:
            await lease.hand_over_checkpoint(ctx, services.run_service)
        published = await _report(ctx, outcome)
    finally:
        # Re-asked until they end (a cancel meeting a NATS ack can be lost in Python 3.11's wait_for).
        await asyncio.gather(*(cancel_and_wait(task, BACKGROUND_STOP_SECONDS) for task in background))
        with contextlib.suppress(Exception):
            await unsubscribe()
    if ctx.stop.reason is StopReason.SHUTDOWN and not published:
        await lease.release(ctx, services.run_service)
    settlement = settlement_after(published)
    await _settle(delivery, settlement)
    metrics.JOBS_SETTLED.labels(settlement.value).inc()
    log.info("job settled", run_id=ctx.run_id, settlement=settlement.value, stop=ctx.stop.reason)
    return settlement


async def _work(ctx: AttemptContext, steps: JobSteps) -> Outcome:
    """Runs the steps; returns the completed payload, a failure, or None when stopped."""
    started = time.monotonic()
    try:
        resumed_from = await _resume_checkpoint(ctx)
        await ctx.reporter.started(ctx.worker_id, ctx.device, resumed_from)
        await ctx.enter_phase(types_pb2.PREPARING_DATASET)
        prepared = await _step(ctx, steps.prepare(ctx.job, ctx.work_dir / "data"))
        await ctx.enter_phase(types_pb2.TRAINING)
        trained = await steps.train(ctx, prepared)  # stops by itself, keeping the checkpoint
        if ctx.stop.requested or trained is None:
            return None
        await ctx.enter_phase(types_pb2.EVALUATING)
        evaluated = await _step(ctx, steps.evaluate(trained))
        await ctx.enter_phase(types_pb2.UPLOADING)
        stored = await _step(ctx, steps.upload(ctx.run_id, ctx.lease.attempt, prepared, trained, evaluated))
        return completed_payload(
            ctx.job, ctx.lease.training_run.display_name, ctx.device, prepared, trained, evaluated, stored,
            time.monotonic() - started,
        )  # fmt: skip
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


async def _resume_checkpoint(ctx: AttemptContext) -> str:
    """Downloads the checkpoint training_run handed out; a missing one means training from the start."""
    key = ctx.lease.resume_checkpoint
    if not key:
        return ""
    try:
        ctx.resume_from = await _step(ctx, ctx.checkpoints.download(key, ctx.work_dir / "resume"))
    except Stopped:
        raise
    except Exception as exc:
        log.warning(
            "resume checkpoint unusable; training from the start", run_id=ctx.run_id, key=key, error=str(exc)
        )
        return ""
    try:  # the evaluation then picks the best of the whole run, not only of this attempt
        await _step(ctx, ctx.checkpoints.download_best(ctx.train_dir))
    except Stopped:
        raise
    except Exception as exc:
        log.warning("best checkpoint of earlier attempts unusable", run_id=ctx.run_id, error=str(exc))
    return key


async def _step(ctx: AttemptContext, awaitable: Awaitable[T]) -> T:
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


async def _report(ctx: AttemptContext, outcome: Outcome) -> bool:
    """Reports the terminal event the outcome calls for; returns whether one was durably stored."""
    if not ctx.stop.may_publish_terminal:
        log.warning("lease lost: no outcome published", run_id=ctx.run_id, detail=ctx.stop.detail)
        return False
    try:
        if isinstance(outcome, events_pb2.RunCompleted):
            await ctx.reporter.completed(outcome)
            metrics.OUTCOMES.labels("completed").inc()
            await lease.quietly(ctx.checkpoints.delete_all(), "delete checkpoints")
            return True
        if isinstance(outcome, types_pb2.Failure):
            await ctx.reporter.failed(outcome)
            metrics.OUTCOMES.labels(types_pb2.FailureKind.Name(outcome.kind)).inc()
            return True
        if ctx.stop.reason is StopReason.CANCELLED:
            last = await lease.quietly(ctx.checkpoints.sync(ctx.train_dir), "upload last checkpoint")
            await ctx.reporter.cancelled(ctx.stop.detail or "cancelled", last or ctx.checkpoints.latest_key)
            metrics.OUTCOMES.labels("cancelled").inc()
            return True
        if ctx.stop.reason is StopReason.SHUTDOWN:
            await ctx.reporter.flush_logs()
            return False
        await ctx.reporter.failed(
            types_pb2.Failure(  # stopped without a reason: a bug, say so
                kind=types_pb2.INTERNAL_ERROR,
                message="training ended without a result; the run can be retried",
            )
        )
        return True
    except EventPublishFailed as exc:
        log.error("terminal event not stored; job goes back to the queue", run_id=ctx.run_id, error=str(exc))
        return False


async def _settle(delivery: JobDelivery, settlement: Settlement) -> None:
    try:
        if settlement is Settlement.ACK:
            await delivery.ack()
        elif settlement is Settlement.TERM:
            await delivery.term()
        else:
            await delivery.nak()
    except Exception as exc:
        log.warning("job message not settled", settlement=settlement.value, error=str(exc))


def _remove_scratch(work_dir: Path) -> None:
    """Prepared data and local checkpoints go; what resume needs is in the artifact store already."""
    shutil.rmtree(work_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        work_dir.parent.rmdir()  # the run's directory, unless another attempt still works in it


def remove_stale_attempts(run_dir: Path, attempt: int) -> list[Path]:
    """Removes the scratch of this run's earlier attempts (``attempt-N``, N < ``attempt``) under the worker's
    work dir: a worker killed mid-attempt left it behind. Later attempts and anything else stay."""
    removed = []
    with contextlib.suppress(OSError):
        for path in run_dir.iterdir():
            number = path.name.removeprefix("attempt-")
            if path.is_dir() and number != path.name and number.isdigit() and int(number) < attempt:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def _close(awaitable: Awaitable[Any]) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()
