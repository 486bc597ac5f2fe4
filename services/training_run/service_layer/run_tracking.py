"""What workers and the event stream tell training_run: claims, lease heartbeats and releases, reported
progress and results, dead-lettered messages, expired leases.

Each use case changes one stored run through its domain methods; a concurrent write is retried from a fresh
read. What users ask is in :mod:`services`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from common.artifacts import normalize_key
from common.errors import FieldViolation, InvalidArgument, NotFound, require
from services.training_run.domain.model import StartupGrace, TrainingRun
from services.training_run.service_layer import commands
from services.training_run.service_layer.unit_of_work import (
    UnitOfWork,
    UnitOfWorkFactory,
    change_with_retries,
)

T = TypeVar("T")


@dataclass(frozen=True)
class LeaseSettings:
    lease: timedelta = timedelta(seconds=60)
    heartbeat: timedelta = timedelta(seconds=10)
    registration_timeout: timedelta = timedelta(minutes=15)
    startup_grace: timedelta = timedelta(0)  # raised to at least one lease


@dataclass(frozen=True)
class Claimed:
    run: TrainingRun
    resume_checkpoint: str


class RunTracking:
    def __init__(self, uow: UnitOfWorkFactory, leases: LeaseSettings, clock: Callable[[], datetime]) -> None:
        self._uow = uow
        self._leases = leases
        self._clock = clock
        started = clock()
        # Workers could not heartbeat while this service was down: leases are judged from now on.
        self._grace = StartupGrace(started, started + max(leases.startup_grace, leases.lease))

    @property
    def heartbeat_interval(self) -> timedelta:
        return self._leases.heartbeat

    # ---- worker calls --------------------------------------------------------------------------------------
    async def claim(self, run_id: str, worker_id: str, job_attempt: int) -> Claimed:
        _require_worker_fields(worker_id, job_attempt, "job_attempt")

        def change(run: TrainingRun) -> Claimed:
            checkpoint = run.resume_checkpoint
            run.ensure_claimable()  # a run waiting for its dataset version has no job yet
            run.claim(worker_id, job_attempt, self._clock(), self._leases.lease)
            return Claimed(run, checkpoint)

        return await self._retrying(run_id, change)

    async def heartbeat(
        self, run_id: str, worker_id: str, attempt: int, checkpoint: str
    ) -> tuple[datetime, bool]:
        _require_worker_fields(worker_id, attempt, "attempt")
        _check_checkpoint(checkpoint)

        def change(run: TrainingRun) -> tuple[datetime, bool]:
            stop = run.heartbeat(
                worker_id, attempt, self._clock(), self._leases.lease, checkpoint, self._grace
            )
            assert run.lease_expire_time is not None
            return run.lease_expire_time, stop

        return await self._retrying(run_id, change)

    async def release(self, run_id: str, worker_id: str, attempt: int, reason: str, checkpoint: str) -> None:
        _require_worker_fields(worker_id, attempt, "attempt")
        _check_checkpoint(checkpoint)
        await self._retrying(
            run_id,
            lambda run: run.release(worker_id, attempt, self._clock(), reason, checkpoint, self._grace),
        )

    # ---- events and housekeeping ---------------------------------------------------------------------------
    async def apply_event(self, event: commands.ReportedEvent) -> bool:
        """Applies a reported event to the stored run; False when it was stale, a duplicate or unknown."""
        if event.kind == "state_changed":
            return False  # our own announcements
        if event.kind == "log":
            async with self._uow() as uow:
                run = await uow.runs.get(event.run_id)
                if run is None or not 1 <= event.attempt <= run.attempt:
                    return False
                await uow.runs.add_log_lines(run.id, event.attempt, event.seq, event.lines)
                await uow.commit()
            return True
        now = self._clock()
        deadline = now + self._leases.registration_timeout

        def change(run: TrainingRun) -> bool:
            match event.kind:
                case "started":
                    return run.on_started(event.attempt, now)
                case "phase_changed" | "progress":
                    return run.on_progress(event.attempt, event.seq, now, event.phase, event.progress)
                case "completed":
                    return run.on_completed(
                        event.attempt, now, deadline, event.stopped_epoch, event.stopped_by_time_budget
                    )
                case "failed":
                    assert event.failure is not None
                    return run.on_failed(event.attempt, event.failure, now)
                case "cancelled":
                    return run.on_cancelled(event.attempt, now, event.reason)
                case "model_registered" if event.attempt in (0, run.attempt):
                    return run.on_model_registered(f"trainedModels/{event.trained_model_id}", now)
                case "registration_failed" if event.attempt in (0, run.attempt):
                    assert event.failure is not None
                    return run.on_registration_failed(event.failure, now)
            return False

        try:
            return await self._retrying(event.run_id, change, save_only_if=bool)
        except NotFound:
            return False

    async def fail_dead_lettered(self, run_id: str, attempt: int, message: str) -> bool:
        """Ends a run FAILED because a message about it was dead-lettered; False when stale or unknown."""
        try:
            return await self._retrying(
                run_id, lambda run: run.on_dead_lettered(attempt, message, self._clock()), save_only_if=bool
            )
        except NotFound:
            return False

    async def reap_expired_leases(self) -> int:
        """Requeues or fails runs whose lease ran out; returns how many changed (none within the start-up
        grace)."""
        if self._grace.covers(self._clock()):
            return 0
        async with self._uow() as uow:
            ids = await uow.runs.expired_lease_ids(self._clock())
        changed = 0
        for run_id in ids:
            try:
                if await self._retrying(
                    run_id, lambda run: run.expire_lease(self._clock(), self._grace), save_only_if=bool
                ):
                    changed += 1
            except NotFound:
                continue
        return changed

    async def reap(self) -> int:
        """One reaper round: expired leases, then PENDING runs past their max_pending."""
        return await self.reap_expired_leases() + await self.fail_overdue_pending()

    async def fail_overdue_pending(self) -> int:
        """Ends FAILED the PENDING runs past their max_pending; returns how many (one query per round)."""
        async with self._uow() as uow:
            ids = await uow.runs.overdue_pending_ids(self._clock())
        changed = 0
        for run_id in ids:
            try:
                if await self._retrying(
                    run_id, lambda run: run.expire_pending(self._clock()), save_only_if=bool
                ):
                    changed += 1
            except NotFound:
                continue
        return changed

    async def _retrying(
        self, run_id: str, change: Callable[[TrainingRun], T], save_only_if: Callable[[T], bool] | None = None
    ) -> T:
        async def load(uow: UnitOfWork) -> TrainingRun:
            run = await uow.runs.get(run_id)
            if run is None:
                raise NotFound(f"training run trainingRuns/{run_id} does not exist")
            return run

        return await change_with_retries(self._uow, load, change, save_only_if=save_only_if)


def _require_worker_fields(worker_id: str, attempt: int, attempt_field: str) -> None:
    violations = []
    if not worker_id or len(worker_id) > 200:
        violations.append(FieldViolation("worker_id", "is required (at most 200 characters)"))
    if attempt < 1:
        violations.append(
            FieldViolation(attempt_field, "must be >= 1 (the attempt from the job or the claim)")
        )
    require(violations)


def _check_checkpoint(key: str) -> None:
    if not key:
        return
    try:
        normalize_key(key)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, [FieldViolation("latest_checkpoint", exc.message)]) from exc
