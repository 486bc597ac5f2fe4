"""Keeping an attempt alive while its steps work: lease heartbeats (which also carry the newest resume
checkpoint and bring back cancel requests), in-progress acks of the job message, checkpoint uploads; and
handing the lease back when the worker shuts down."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import TypeVar

from common.logging import get_logger
from services.trainer_worker.domain.job import LeaseClock, StopReason
from services.trainer_worker.service_layer.context import AttemptContext
from services.trainer_worker.service_layer.ports import (
    JobDelivery,
    LeaseLost,
    RunService,
    TrainingRunUnavailable,
)

log = get_logger("trainer_worker.job")
T = TypeVar("T")


async def quietly(awaitable: Awaitable[T], what: str) -> T | None:
    """Awaits housekeeping whose failure must not end the attempt (logged, None instead)."""
    try:
        return await awaitable
    except Exception as exc:
        log.warning(f"{what} failed", error=str(exc))
        return None


async def heartbeats(ctx: AttemptContext, run_service: RunService) -> None:
    """Renews the lease until cancelled; a lost lease or a requested cancel becomes a stop request."""
    lease = ctx.lease
    clock = LeaseClock(lease.heartbeat_seconds, time.monotonic() + lease.lease_seconds_left)
    failed = False
    while True:
        await asyncio.sleep(clock.next_beat_in(time.monotonic(), failed))
        key = ctx.checkpoints.latest_key
        try:
            cancel, left = await run_service.heartbeat(lease, key)
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
        await quietly(ctx.checkpoints.acknowledged(key), "prune checkpoints")
        if cancel:
            ctx.request_stop(StopReason.CANCELLED, "cancel requested")


async def hand_over_checkpoint(ctx: AttemptContext, run_service: RunService) -> None:
    """Before a retryable failure: upload the newest checkpoint and record it (one heartbeat), so the retry
    resumes from the last epoch the crashed child saved."""
    key = await quietly(ctx.checkpoints.sync(ctx.train_dir), "upload last checkpoint")
    if key:
        await quietly(run_service.heartbeat(ctx.lease, key), "record last checkpoint")


async def in_progress_acks(delivery: JobDelivery, ack_wait: float) -> None:
    """Tells the queue the job is still worked on, well within its ack wait, until cancelled."""
    interval = max(1.0, min(30.0, ack_wait / 3))
    while True:
        await asyncio.sleep(interval)
        with contextlib.suppress(Exception):
            await delivery.in_progress()


async def checkpoint_uploads(ctx: AttemptContext, poll_seconds: float) -> None:
    """Uploads each new local checkpoint (polled, or at once after an epoch) until a stop is requested."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.checkpoint_wakeup.wait(), poll_seconds)
        ctx.checkpoint_wakeup.clear()
        if ctx.stop.requested:
            return  # the final sync on stop takes over
        await quietly(ctx.checkpoints.sync(ctx.train_dir), "upload checkpoint")


async def release(ctx: AttemptContext, run_service: RunService) -> None:
    """Worker shutdown: hand the lease back with the newest checkpoint; another worker resumes at once."""
    latest = await quietly(ctx.checkpoints.sync(ctx.train_dir), "upload checkpoint before release")
    try:
        await run_service.release(ctx.lease, "worker shutting down", latest or ctx.checkpoints.latest_key)
        log.info("lease released", run_id=ctx.run_id, checkpoint=latest)
    except (LeaseLost, TrainingRunUnavailable) as exc:
        log.warning("release failed; the lease will expire instead", run_id=ctx.run_id, error=str(exc))
