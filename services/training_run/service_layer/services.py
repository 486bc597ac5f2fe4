"""What users ask of training_run: create, read, list, watch, edit, cancel, delete runs, read their logs.

Each use case loads runs through a unit of work, calls domain methods and commits. What workers and the
event stream report (claims, heartbeats, progress, results) is in :mod:`run_tracking`.
"""

from __future__ import annotations

import builtins
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from common import page_tokens, update_masks
from common.auth import Permission, Principal
from common.errors import Aborted, FieldViolation, InvalidArgument, NotFound, PermissionDenied, require
from common.page_tokens import Cursor
from services.training_run.adapters.dataset_mapping import run_input
from services.training_run.adapters.proto_mapping import etag as etag_of
from services.training_run.adapters.repository import (
    ConcurrentUpdate,
    DuplicateRequest,
    ListedRun,
    RunFilter,
)
from services.training_run.domain.datasets import RunInput
from services.training_run.domain.model import Phase, RunState, TrainingRun
from services.training_run.service_layer import commands
from services.training_run.service_layer.datasets import VERSION_NAME, parse_version_name, visible_version
from services.training_run.service_layer.implicit_versions import ImplicitVersions
from services.training_run.service_layer.unit_of_work import (
    UnitOfWork,
    UnitOfWorkFactory,
    change_with_retries,
)
from services.training_run.service_layer.validation import CreateContext, printable_text, validate_create

T = TypeVar("T")
NAME = re.compile(r"^trainingRuns/([A-Za-z0-9_-]{1,36})$")
EDITABLE = ("display_name", "description")


class RunEventItem(Protocol):
    """An event of one run from its feed: ``rendered`` is the response built once for every live watcher,
    None for a replayed event."""

    @property
    def event(self) -> Any: ...

    @property
    def rendered(self) -> Any: ...

    @property
    def ends_run(self) -> bool: ...


# (run id, after sequence, replay only): the run's events after that sequence, replayed then live; it ends
# after the run's terminal event, or when the replay ends if ``replay only``.
RunFeed = Callable[[str, int, bool], AsyncIterator[RunEventItem]]


class RunChange(Protocol):
    """A state or phase change of some run (``event``), with the run as stored when it arrived (``rendered``,
    a :class:`TrainingRun`; None when the run is gone)."""

    @property
    def event(self) -> Any: ...

    @property
    def rendered(self) -> Any: ...


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


def run_filter(
    principal: Principal, query: commands.ListTrainingRuns | commands.WatchTrainingRuns
) -> RunFilter:
    """The filter of a List or Watch: known states only, another owner's runs only for those who see all."""
    bad_states = [s for s in query.states if s not in RunState._value2member_map_ or s == 0]
    if bad_states:
        raise InvalidArgument(
            "unknown state filter", [FieldViolation("states", f"unknown values {bad_states}")]
        )
    sees_all = principal.is_superadmin or principal.has(Permission.VIEW_ALL_TRAINING_RUNS)
    if query.owner and query.owner != principal.subject and not sees_all:
        raise PermissionDenied(
            f"seeing the runs of {query.owner!r} needs the "
            f"{Permission.VIEW_ALL_TRAINING_RUNS.value!r} permission"
        )
    return RunFilter(
        owner=query.owner or (None if sees_all else principal.subject),
        states=tuple(sorted(set(query.states))),
        dataset=query.dataset,
        base_model=query.base_model,
        model_template=query.model_template,
    )


@dataclass(frozen=True)
class RunCounts:
    by_state_and_phase: dict[tuple[RunState, Phase], int]
    oldest_pending_seconds: float  # 0 when nothing is PENDING
    unsent_messages: int

    @property
    def by_state(self) -> dict[RunState, int]:
        totals: dict[RunState, int] = {}
        for (state, _), count in self.by_state_and_phase.items():
            totals[state] = totals.get(state, 0) + count
        return totals


class TrainingRunService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        create_context: CreateContext,
        clock: Callable[[], datetime],
        implicit: ImplicitVersions | None = None,
    ) -> None:
        self._uow = uow
        self._create_context = create_context
        self._clock = clock
        self._implicit = implicit  # None: plain references train as given (tests of other parts only)

    async def create(self, principal: Principal, cmd: commands.CreateTrainingRun) -> TrainingRun:
        principal.require(Permission.CREATE_TRAINING_RUNS)
        if cmd.request_id:
            async with self._uow() as uow:
                existing = await uow.runs.get_by_request_id(principal.subject, cmd.request_id)
            if existing is not None:
                return existing
        version = await self._dataset_version(principal, cmd)
        spec = await validate_create(
            cmd, self._create_context, operator=principal.is_superadmin, version=version
        )
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
            if spec.dataset and self._implicit is not None:
                return await self._add_on_implicit_version(principal, run)
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

    async def _add_on_implicit_version(self, principal: Principal, new: TrainingRun) -> TrainingRun:
        """Store ``new`` (a plain dataset reference) on the version of its files (``implicit_versions``)."""
        assert self._implicit is not None
        return await self._implicit.add_run(principal.subject, new, self._create_context.artifacts)

    async def _dataset_version(
        self, principal: Principal, cmd: commands.CreateTrainingRun
    ) -> RunInput | None:
        """The run's dataset version when the request names one well-formed: visible to the caller (else
        NotFound, as DatasetService reads) and READY (else FailedPrecondition saying its state)."""
        if not cmd.dataset_version or cmd.dataset or not VERSION_NAME.match(cmd.dataset_version):
            return None  # absent, or a field violation validate_create reports with the others
        principal.require(Permission.VIEW_DATASETS)
        dataset_id, number = parse_version_name(cmd.dataset_version, "training_run.dataset_version")
        async with self._uow() as uow:
            version = await visible_version(uow, principal, dataset_id, number)
        version.ensure_ready_for_runs()
        return run_input(version)

    async def get(self, principal: Principal, name: str) -> TrainingRun:
        async with self._uow() as uow:
            return await self._visible(uow, principal, parse_name(name))

    async def list(
        self, principal: Principal, query: commands.ListTrainingRuns
    ) -> tuple[builtins.list[ListedRun], str, int]:
        """One page of the runs the caller may see, newest first: each run's key (id, row version, owner; the
        runs themselves from :meth:`listed` or a rendering of that version), the next page's token and the
        number of runs on all pages."""
        if query.page_size < 0:
            raise InvalidArgument(
                "page_size must not be negative", [FieldViolation("page_size", "must be >= 0")]
            )
        size = min(query.page_size or 50, 500)
        where = run_filter(principal, query)
        query_fingerprint = page_tokens.fingerprint((where, principal.subject))
        cursor = page_tokens.decode_cursor(query.page_token, query_fingerprint)
        after = None
        if cursor is not None:
            try:
                after = (datetime.fromisoformat(str(cursor.value)), cursor.id)
            except ValueError as exc:
                raise page_tokens.invalid("is not a page token issued by this service") from exc
        async with self._uow.reading() as uow:  # one statement: the page's keys and the count
            keys, total = await uow.runs.list_keys(where, after, size + 1)
        next_token = ""
        if len(keys) > size:
            keys = keys[:size]
            last = keys[-1]
            next_token = page_tokens.encode_cursor(
                Cursor(last.create_time.isoformat(), last.id), query_fingerprint
            )
        return keys, next_token, total

    async def listed(self, run_ids: builtins.list[str]) -> dict[str, TrainingRun]:
        """The runs of a page :meth:`list` gave (its access check and filter hold), without their resolved
        config; a run deleted meanwhile is missing."""
        async with self._uow.reading() as uow:
            return await uow.runs.get_listed(run_ids)

    async def watch(
        self, principal: Principal, name: str, after_sequence: int, feed: RunFeed
    ) -> tuple[TrainingRun, AsyncIterator[RunEventItem]]:
        """The run as read when the call began (without its resolved config), and its events after
        ``after_sequence`` (replayed, then live) from ``feed``: they end after the terminal event, or when the
        replay ends for a run already over (the caller iterates the feed itself: one generator less per event
        and watcher)."""
        run_id = parse_name(name)
        async with self._uow() as uow:
            run = await self._visible(uow, principal, run_id, listed=True)  # a watch shows no resolved config
            # Terminal with nothing left in the outbox: the terminal event is in the stream, at or before its
            # last message.
            finished = run.state.terminal and not await uow.has_unsent_messages(run.id)
        return run, feed(run.id, after_sequence, finished)

    async def watch_changes(
        self, principal: Principal, query: commands.WatchTrainingRuns, changes: AsyncIterable[RunChange]
    ) -> AsyncIterator[RunChange]:
        """The changes of runs that the caller may see and that match the query's filter."""
        where = run_filter(principal, query)
        async for change in changes:
            run = change.rendered
            if run is not None and can_view(principal, run) and where.matches(run):
                yield change

    async def update(self, principal: Principal, cmd: commands.UpdateTrainingRun) -> TrainingRun:
        run_id = parse_name(cmd.name, "training_run.name")
        # An empty mask means the fields the request fills in (AIP-134).
        paths = set(cmd.paths) or {p for p in EDITABLE if getattr(cmd, p)}
        violations = update_masks.violations(paths, EDITABLE)
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
            token = page_tokens.decode(page_token)
            after = page_tokens.non_negative_int(token, "i", 0)
            attempt = page_tokens.non_negative_int(token, "a", attempt)
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
            page_tokens.encode({"a": attempt, "i": lines[-1][0]}) if lines and (more or not finished) else ""
        )
        return [line for _, line in lines], next_token, finished and not more

    async def snapshot(self, run_id: str) -> TrainingRun | None:
        """The stored run without its resolved config and without access checks, for the watch fan-outs: they
        filter by caller themselves and send runs without their config (decoding it was most of the read,
        once per event)."""
        async with self._uow() as uow:
            return (await uow.runs.get_listed([run_id])).get(run_id)

    async def counts(self) -> RunCounts:
        """For metrics: runs by state and phase (every pair, zeros included), the age of the oldest PENDING
        run and the outbox messages not yet published; one aggregate query each."""
        async with self._uow() as uow:
            found = await uow.runs.count_by_state_and_phase()
            oldest = await uow.runs.oldest_pending_create_time()
            unsent = await uow.unsent_messages()
        by_phase = {(s, p): found.get((s, p), 0) for s in RunState if s for p in Phase}
        age = max(0.0, (self._clock() - oldest).total_seconds()) if oldest else 0.0
        return RunCounts(by_phase, age, unsent)

    async def _visible(
        self, uow: UnitOfWork, principal: Principal, run_id: str, listed: bool = False
    ) -> TrainingRun:
        """The run, if the caller may see it (else NotFound); ``listed``: without its resolved config."""
        run = (await uow.runs.get_listed([run_id])).get(run_id) if listed else await uow.runs.get(run_id)
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
        return await change_with_retries(
            self._uow, lambda uow: self._owned(uow, principal, run_id, etag), change, retry_conflicts=not etag
        )
