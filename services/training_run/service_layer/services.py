"""Use cases of training_run: each loads runs through a unit of work, calls domain methods, commits."""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from common.artifacts import normalize_key
from common.auth import Permission, Principal
from common.errors import Aborted, FieldViolation, InvalidArgument, NotFound, PermissionDenied, require
from common.logging import get_logger
from services.training_run.adapters.proto_mapping import etag as etag_of
from services.training_run.adapters.repository import ConcurrentUpdate, DuplicateRequest, RunFilter
from services.training_run.domain.model import RunState, TrainingRun
from services.training_run.service_layer import commands
from services.training_run.service_layer.unit_of_work import UnitOfWork, UnitOfWorkFactory
from services.training_run.service_layer.validation import CreateContext, printable_text, validate_create

T = TypeVar("T")
NAME = re.compile(r"^trainingRuns/([A-Za-z0-9_-]{1,36})$")
log = get_logger("training_run.service")
MAX_RETRIES = 8


@dataclass(frozen=True)
class LeaseSettings:
    lease: timedelta = timedelta(seconds=60)
    heartbeat: timedelta = timedelta(seconds=10)
    registration_timeout: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class Claimed:
    run: TrainingRun
    resume_checkpoint: str


def parse_name(name: str, field: str = "name") -> str:
    match = NAME.match(name or "")
    if not match:
        raise InvalidArgument(
            f"{field} must look like 'trainingRuns/{{id}}', got {name!r}",
            [FieldViolation(field, "must look like 'trainingRuns/{id}'")],
        )
    return match.group(1)


def can_view(principal: Principal, run: TrainingRun) -> bool:
    return can_view_owner(principal, run.owner)


def can_view_owner(principal: Principal, owner: str) -> bool:
    return principal.is_superadmin or principal.can_see_owner(owner, Permission.VIEW_ALL_TRAINING_RUNS)


def _encode_token(payload: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str, field: str = "page_token") -> dict[str, object]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if isinstance(data, dict):
            return data
    except (binascii.Error, ValueError):
        pass
    raise InvalidArgument(
        f"{field} is not a token from a previous response", [FieldViolation(field, "is invalid")]
    )


def _token_int(token: dict[str, object], key: str, default: int) -> int:
    """A non-negative integer of a page token.

    Anything else (a forged token) is INVALID_ARGUMENT, not INTERNAL.
    """
    value = token.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
        raise InvalidArgument(
            "page_token is not a token from a previous response", [FieldViolation("page_token", "is invalid")]
        )
    return value


class TrainingRunService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        create_context: CreateContext,
        leases: LeaseSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._uow = uow
        self._create_context = create_context
        self._leases = leases
        self._clock = clock

    # ---- user use cases ------------------------------------------------------------------------------------
    async def create(self, principal: Principal, cmd: commands.CreateTrainingRun) -> TrainingRun:
        principal.require(Permission.CREATE_TRAINING_RUNS)
        if cmd.request_id:
            async with self._uow() as uow:
                existing = await uow.runs.get_by_request_id(principal.subject, cmd.request_id)
            if existing is not None:
                return existing
        spec = await validate_create(cmd, self._create_context, operator=principal.is_superadmin)
        run = TrainingRun.create(
            id=uuid.uuid4().hex,
            owner=principal.subject,
            display_name=cmd.display_name,
            spec=spec,
            now=self._clock(),
            description=cmd.description,
            request_id=cmd.request_id,
        )
        if cmd.validate_only:
            return run
        try:
            async with self._uow() as uow:
                await uow.runs.add(run)
                await uow.commit()
        except DuplicateRequest:
            # A concurrent Create with the same request id committed first: answer with its run. The lookup
            # runs in a fresh transaction so it sees that commit whatever snapshot the failed one had.
            async with self._uow() as uow:
                found = await uow.runs.get_by_request_id(principal.subject, cmd.request_id)
            if found is None:
                raise Aborted(
                    f"another CreateTrainingRun with request_id {cmd.request_id!r} is in progress; retry"
                ) from None
            return found
        return run

    async def get(self, principal: Principal, name: str) -> TrainingRun:
        async with self._uow() as uow:
            return await self._visible(uow, principal, parse_name(name))

    async def list(
        self, principal: Principal, query: commands.ListTrainingRuns
    ) -> tuple[list[TrainingRun], str, int]:
        if query.page_size < 0:
            raise InvalidArgument(
                "page_size must not be negative", [FieldViolation("page_size", "must be >= 0")]
            )
        size = min(query.page_size or 50, 500)
        bad_states = [s for s in query.states if s not in RunState._value2member_map_ or s == 0]
        if bad_states:
            raise InvalidArgument(
                "unknown state filter", [FieldViolation("states", f"unknown values {bad_states}")]
            )
        owner: str | None = query.owner or None
        sees_all = principal.is_superadmin or principal.has(Permission.VIEW_ALL_TRAINING_RUNS)
        if not sees_all:
            if owner not in (None, principal.subject):
                raise PermissionDenied(
                    f"listing runs of {owner!r} needs {Permission.VIEW_ALL_TRAINING_RUNS!r}"
                )
            owner = principal.subject
        where = RunFilter(
            owner=owner,
            states=tuple(sorted(set(query.states))),
            dataset=query.dataset,
            base_model=query.base_model,
            model_template=query.model_template,
        )
        fingerprint = hashlib.sha256(repr((where, principal.subject)).encode()).hexdigest()[:16]
        after = None
        if query.page_token:
            token = _decode_token(query.page_token)
            if token.get("f") != fingerprint:
                raise InvalidArgument(
                    "page_token was issued for other filters",
                    [FieldViolation("page_token", "does not match the request's filters")],
                )
            try:
                after = (datetime.fromisoformat(str(token["t"])), str(token["i"]))
            except (KeyError, ValueError) as exc:
                raise InvalidArgument(
                    "page_token is invalid", [FieldViolation("page_token", "is invalid")]
                ) from exc
        async with self._uow() as uow:
            runs = await uow.runs.list(where, after, size + 1)
            total = await uow.runs.count(where)
        next_token = ""
        if len(runs) > size:
            runs = runs[:size]
            last = runs[-1]
            next_token = _encode_token({"t": last.create_time.isoformat(), "i": last.id, "f": fingerprint})
        return runs, next_token, total

    async def update(self, principal: Principal, cmd: commands.UpdateTrainingRun) -> TrainingRun:
        run_id = parse_name(cmd.name, "training_run.name")
        allowed = {"display_name", "description"}
        paths = set(cmd.paths) or {p for p in allowed if getattr(cmd, p)}
        violations = [
            FieldViolation("update_mask", f"{p!r} can't be updated; only {sorted(allowed)}")
            for p in sorted(paths - allowed)
        ]
        if not paths:
            violations.append(FieldViolation("update_mask", "name at least one of display_name, description"))
        if "display_name" in paths:
            violations += printable_text(cmd.display_name, "training_run.display_name", 200, required=True)
        if "description" in paths:
            violations += printable_text(cmd.description, "training_run.description", 10_000, required=False)
        require(violations)

        def change(run: TrainingRun) -> TrainingRun:
            run.rename(
                self._clock(),
                cmd.display_name if "display_name" in paths else None,
                cmd.description if "description" in paths else None,
            )
            return run

        return await self._change(principal, run_id, change, etag=cmd.etag)

    async def delete(self, principal: Principal, name: str, etag: str = "") -> None:
        run_id = parse_name(name)
        async with self._uow() as uow:
            run = await self._owned(uow, principal, run_id, etag)
            run.ensure_deletable()
            try:
                await uow.runs.delete(run)
            except ConcurrentUpdate as exc:
                raise Aborted("the run changed while deleting it; retry") from exc
            await uow.commit()

    async def cancel(self, principal: Principal, name: str, reason: str = "") -> TrainingRun:
        run_id = parse_name(name)
        if len(reason) > 1000:
            raise InvalidArgument(
                "reason is too long", [FieldViolation("reason", "must be at most 1000 characters")]
            )

        def change(run: TrainingRun) -> TrainingRun:
            run.request_cancel(self._clock(), reason)
            return run

        return await self._change(principal, run_id, change)

    async def logs(
        self, principal: Principal, name: str, attempt: int, page_size: int, page_token: str
    ) -> tuple[builtins.list[str], str, bool]:
        run_id = parse_name(name)
        if page_size < 0 or attempt < 0:
            raise InvalidArgument(
                "page_size and attempt must not be negative",
                [FieldViolation("page_size" if page_size < 0 else "attempt", "must be >= 0")],
            )
        size = min(page_size or 500, 5000)
        after = 0
        if page_token:
            token = _decode_token(page_token)
            after, attempt = _token_int(token, "i", 0), _token_int(token, "a", attempt)
        async with self._uow() as uow:
            run = await self._visible(uow, principal, run_id)
            attempt = attempt or run.attempt
            if attempt > run.attempt:
                raise InvalidArgument(
                    "no such attempt", [FieldViolation("attempt", f"the run has {run.attempt}")]
                )
            lines = await uow.runs.log_lines(run_id, attempt, after, size + 1)
        more = len(lines) > size
        lines = lines[:size]
        finished = run.state.terminal or attempt < run.attempt
        next_token = (
            _encode_token({"a": attempt, "i": lines[-1][0]}) if lines and (more or not finished) else ""
        )
        return [line for _, line in lines], next_token, finished and not more

    async def snapshot(self, run_id: str) -> TrainingRun | None:
        """The stored run without access checks (watch fan-out filters by caller itself)."""
        async with self._uow() as uow:
            return await uow.runs.get(run_id)

    async def has_unsent_messages(self, run_id: str) -> bool:
        async with self._uow() as uow:
            return await uow.has_unsent_messages(run_id)

    async def counts(self) -> tuple[dict[RunState, int], int]:
        """Runs by state (every state, zeros included) and outbox messages not yet published, for metrics."""
        async with self._uow() as uow:
            found = await uow.runs.count_by_state()
            unsent = await uow.unsent_messages()
        return {state: found.get(state, 0) for state in RunState if state}, unsent

    @property
    def heartbeat_interval(self) -> timedelta:
        return self._leases.heartbeat

    # ---- worker use cases ----------------------------------------------------------------------------------
    async def claim(self, run_id: str, worker_id: str, job_attempt: int) -> Claimed:
        _require_worker_fields(worker_id, job_attempt, "job_attempt")

        def change(run: TrainingRun) -> Claimed:
            checkpoint = run.resume_checkpoint
            run.claim(worker_id, job_attempt, self._clock(), self._leases.lease)
            return Claimed(run, checkpoint)

        return await self._retrying(run_id, change)

    async def heartbeat(
        self, run_id: str, worker_id: str, attempt: int, checkpoint: str
    ) -> tuple[datetime, bool]:
        _require_worker_fields(worker_id, attempt, "attempt")
        _check_checkpoint(checkpoint)

        def change(run: TrainingRun) -> tuple[datetime, bool]:
            stop = run.heartbeat(worker_id, attempt, self._clock(), self._leases.lease, checkpoint)
            assert run.lease_expire_time is not None
            return run.lease_expire_time, stop

        return await self._retrying(run_id, change)

    async def release(self, run_id: str, worker_id: str, attempt: int, reason: str, checkpoint: str) -> None:
        _require_worker_fields(worker_id, attempt, "attempt")
        _check_checkpoint(checkpoint)
        await self._retrying(
            run_id, lambda run: run.release(worker_id, attempt, self._clock(), reason, checkpoint)
        )

    # ---- background ----------------------------------------------------------------------------------------
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
                    return run.on_completed(event.attempt, now, deadline)
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
        """Requeues or fails runs whose lease ran out; returns how many changed."""
        async with self._uow() as uow:
            ids = await uow.runs.expired_lease_ids(self._clock())
        changed = 0
        for run_id in ids:
            try:
                if await self._retrying(
                    run_id, lambda run: run.expire_lease(self._clock()), save_only_if=bool
                ):
                    changed += 1
            except NotFound:
                continue
        return changed

    # ---- helpers -------------------------------------------------------------------------------------------
    async def _visible(self, uow: UnitOfWork, principal: Principal, run_id: str) -> TrainingRun:
        run = await uow.runs.get(run_id)
        if run is None or not can_view(principal, run):
            raise NotFound(f"training run trainingRuns/{run_id} does not exist")
        return run

    async def _owned(self, uow: UnitOfWork, principal: Principal, run_id: str, etag: str = "") -> TrainingRun:
        run = await self._visible(uow, principal, run_id)
        if not (principal.is_superadmin or run.owner == principal.subject):
            raise PermissionDenied(f"only the owner of trainingRuns/{run_id} may change it")
        if etag and etag != etag_of(run):
            raise Aborted(f"etag {etag!r} is stale: read the run again and retry")
        return run

    async def _change(
        self, principal: Principal, run_id: str, change: Callable[[TrainingRun], T], etag: str = ""
    ) -> T:
        for _ in range(MAX_RETRIES):
            async with self._uow() as uow:
                run = await self._owned(uow, principal, run_id, etag)
                result = change(run)
                try:
                    await uow.runs.save(run)
                except ConcurrentUpdate:
                    if etag:
                        raise Aborted("the run changed meanwhile: read it again and retry") from None
                    continue
                await uow.commit()
                return result
        raise Aborted("the run is changing too often; retry")

    async def _retrying(
        self, run_id: str, change: Callable[[TrainingRun], T], save_only_if: Callable[[T], bool] | None = None
    ) -> T:
        for _ in range(MAX_RETRIES):
            async with self._uow() as uow:
                run = await uow.runs.get(run_id)
                if run is None:
                    raise NotFound(f"training run trainingRuns/{run_id} does not exist")
                result = change(run)
                if save_only_if is not None and not save_only_if(result):
                    return result
                try:
                    await uow.runs.save(run)
                except ConcurrentUpdate:
                    continue
                await uow.commit()
                return result
        raise Aborted("the run is changing too often; retry")


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
