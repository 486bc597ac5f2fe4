"""SQL repository of TrainingRun aggregates (Core statements over the ORM tables, optimistic versioning)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import mapped_table
from services.training_run.adapters.orm import RunLogLineRow, TrainingRunRow
from services.training_run.domain.attempts import AttemptRecord
from services.training_run.domain.model import (
    Failure,
    FailureKind,
    Phase,
    RunSpec,
    RunState,
    TrainingRun,
    Transition,
)
from services.training_run.domain.spec import BaseSplit

RUNS = mapped_table(TrainingRunRow)
LOGS = mapped_table(RunLogLineRow)


class ConcurrentUpdate(Exception):
    """The row changed since it was read (another replica, the event consumer or the reaper); retry."""


class DuplicateRequest(Exception):
    """Another Create with the same (owner, request_id) committed first."""


@dataclass(frozen=True)
class RunFilter:
    owner: str | None = None
    states: tuple[int, ...] = ()
    dataset: str = ""
    base_model: str = ""
    model_template: str = ""

    def clauses(self) -> list[Any]:
        found: list[Any] = []
        if self.owner is not None:
            found.append(RUNS.c.owner == self.owner)
        if self.states:
            found.append(RUNS.c.state.in_(self.states))
        if self.dataset:
            found.append(RUNS.c.dataset == self.dataset)
        if self.base_model:
            found.append(RUNS.c.base_model == self.base_model)
        if self.model_template:
            found.append(RUNS.c.model_template == self.model_template)
        return found

    def matches(self, run: TrainingRun) -> bool:
        return (
            (self.owner is None or run.owner == self.owner)
            and (not self.states or int(run.state) in self.states)
            and (not self.dataset or run.spec.dataset == self.dataset)
            and (not self.base_model or run.spec.base_model == self.base_model)
            and (not self.model_template or run.spec.model_template == self.model_template)
        )


_LISTED = [c for c in RUNS.c if c.name not in ("config_text", "config_data")]


@dataclass(frozen=True)
class ListedRun:
    """A run's place on a ListTrainingRuns page: enough to serve it from a rendering of its row version."""

    id: str
    version: int
    owner: str
    create_time: datetime


_ABSENT = object()


@dataclass
class RunRepository:
    session: AsyncSession
    seen: list[TrainingRun] = field(default_factory=list)
    # run id → its row as this unit of work read or wrote it: ``save`` writes only the columns that differ
    # from it (a progress event changes a few; the resolved config, often the bulk of a row, never changes).
    stored: dict[str, Mapping[Any, Any]] = field(default_factory=dict, repr=False)

    def _loaded(self, row: Mapping[Any, Any] | None) -> TrainingRun | None:
        if row is None:
            return None
        self.stored[row["id"]] = row
        return _to_domain(row)

    async def get(self, run_id: str) -> TrainingRun | None:
        row = (await self.session.execute(select(RUNS).where(RUNS.c.id == run_id))).mappings().first()
        return self._loaded(row)

    async def get_by_request_id(self, owner: str, request_id: str) -> TrainingRun | None:
        statement = select(RUNS).where(RUNS.c.owner == owner, RUNS.c.request_id == request_id)
        row = (await self.session.execute(statement)).mappings().first()
        return self._loaded(row)

    async def add(self, run: TrainingRun) -> None:
        run.version = 1
        try:
            async with self.session.begin_nested():
                await self.session.execute(insert(RUNS).values(**_to_row(run)))
        except IntegrityError as exc:
            raise DuplicateRequest(run.request_id) from exc
        self.seen.append(run)

    async def save(self, run: TrainingRun) -> None:
        """Writes the columns that changed since the run was read (all of them for a run read elsewhere, and a
        column the read left out), guarded by the version read (optimistic: ConcurrentUpdate if it moved)."""
        values = _to_row(run)
        before = self.stored.get(run.id)
        if before is not None and before.get("version") == run.version:
            values = {k: v for k, v in values.items() if before.get(k, _ABSENT) != v}
        values["version"] = run.version + 1
        result = await self.session.execute(
            update(RUNS).where(RUNS.c.id == run.id, RUNS.c.version == run.version).values(**values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentUpdate(run.id)
        run.version += 1
        if before is not None:
            self.stored[run.id] = {**before, **values}
        self.seen.append(run)

    async def delete(self, run: TrainingRun) -> None:
        result = await self.session.execute(
            delete(RUNS).where(RUNS.c.id == run.id, RUNS.c.version == run.version)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentUpdate(run.id)
        await self.session.execute(delete(LOGS).where(LOGS.c.run_id == run.id))

    async def list_keys(
        self, where: RunFilter, after: tuple[datetime, str] | None, limit: int
    ) -> tuple[builtins.list[ListedRun], int]:
        """One page of keys, newest first (``after``: the (create_time, id) keyset of the previous page's last
        row), and the number of runs ``where`` matches on every page, in one statement: the count is an
        uncorrelated scalar subquery, evaluated once."""
        clauses = where.clauses()
        total = select(func.count()).select_from(RUNS).where(*clauses).scalar_subquery()
        if after is not None:
            time, run_id = after
            clauses.append(
                or_(RUNS.c.create_time < time, and_(RUNS.c.create_time == time, RUNS.c.id < run_id))
            )
        statement = (
            select(RUNS.c.id, RUNS.c.version, RUNS.c.owner, RUNS.c.create_time, total.label("total"))
            .where(*clauses)
            .order_by(RUNS.c.create_time.desc(), RUNS.c.id.desc())
            .limit(limit)
        )
        rows = (await self.session.execute(statement)).all()
        if rows:
            found = int(rows[0].total)
        else:  # no row carries the count: past the last page, or nothing matches
            found = 0 if after is None else await self.count(where)
        return [ListedRun(r.id, r.version, r.owner, r.create_time) for r in rows], found

    async def get_listed(self, run_ids: Sequence[str]) -> dict[str, TrainingRun]:
        """The runs ``run_ids`` that exist, without their resolved config (empty ``config_text`` and
        ``config_data``): List does not show it, and decoding it was most of a page's time."""
        if not run_ids:
            return {}
        statement = select(*_LISTED).where(RUNS.c.id.in_(run_ids))
        return {run.id: run for run in map(_to_domain, (await self.session.execute(statement)).mappings())}

    async def count(self, where: RunFilter) -> int:
        statement = select(func.count()).select_from(RUNS).where(*where.clauses())
        return int((await self.session.execute(statement)).scalar_one())

    async def count_by_state_and_phase(self) -> dict[tuple[RunState, Phase], int]:
        statement = select(RUNS.c.state, RUNS.c.phase, func.count()).group_by(RUNS.c.state, RUNS.c.phase)
        return {
            (RunState(state), Phase(phase)): int(n)
            for state, phase, n in await self.session.execute(statement)
        }

    async def oldest_pending_create_time(self) -> datetime | None:
        statement = select(func.min(RUNS.c.create_time)).where(RUNS.c.state == int(RunState.PENDING))
        oldest: datetime | None = (await self.session.execute(statement)).scalar_one()
        return oldest

    async def awaiting_version(self, version_name: str) -> builtins.list[TrainingRun]:
        """The PENDING runs on ``version_name`` that wait for it to be prepared (no split recorded yet)."""
        statement = select(RUNS).where(
            RUNS.c.dataset_version == version_name, RUNS.c.state == int(RunState.PENDING)
        )
        found = [_to_domain(row) for row in (await self.session.execute(statement)).mappings()]
        return [run for run in found if run.awaiting_version]

    async def expired_lease_ids(self, now: datetime, limit: int = 100) -> builtins.list[str]:
        statement = (
            select(RUNS.c.id)
            .where(
                RUNS.c.state.in_((int(RunState.RUNNING), int(RunState.CANCELLING))),
                RUNS.c.lease_expire_time <= now,
            )
            .order_by(RUNS.c.lease_expire_time)
            .limit(limit)
        )
        return list((await self.session.execute(statement)).scalars())

    async def overdue_pending_ids(self, now: datetime, limit: int = 100) -> builtins.list[str]:
        """PENDING runs whose max_pending ran out (one indexed range query per reaper round)."""
        statement = (
            select(RUNS.c.id)
            .where(RUNS.c.state == int(RunState.PENDING), RUNS.c.pending_deadline <= now)
            .order_by(RUNS.c.pending_deadline)
            .limit(limit)
        )
        return list((await self.session.execute(statement)).scalars())

    # ---- log lines -----------------------------------------------------------------------------------------
    async def add_log_lines(self, run_id: str, attempt: int, event_seq: int, lines: Sequence[str]) -> None:
        exists = select(LOGS.c.id).where(LOGS.c.run_id == run_id, LOGS.c.event_seq == event_seq).limit(1)
        if (await self.session.execute(exists)).first() is not None:
            return  # a redelivered event
        if lines:
            await self.session.execute(
                insert(LOGS),
                [
                    {
                        "run_id": run_id,
                        "attempt": attempt,
                        "event_seq": event_seq,
                        "line_index": i,
                        "line": line,
                    }
                    for i, line in enumerate(lines)
                ],
            )

    async def log_lines(
        self, run_id: str, attempt: int, after_id: int, limit: int
    ) -> builtins.list[tuple[int, str]]:
        statement = (
            select(LOGS.c.id, LOGS.c.line)
            .where(LOGS.c.run_id == run_id, LOGS.c.attempt == attempt, LOGS.c.id > after_id)
            .order_by(LOGS.c.id)
            .limit(limit)
        )
        return [(int(r.id), str(r.line)) for r in await self.session.execute(statement)]


def _to_row(run: TrainingRun) -> dict[str, Any]:
    spec = run.spec
    failure = run.failure
    return {
        "id": run.id, "request_id": run.request_id or None, "owner": run.owner,
        "display_name": run.display_name,
        "description": run.description, "dataset": spec.dataset, "base_model": spec.base_model,
        "dataset_version": spec.dataset_version, "dataset_source": spec.dataset_source or None,
        "base_model_checkpoint": spec.base_model_checkpoint, "model_template": spec.model_template,
        "class_names": list(spec.class_names), "hyperparameters": spec.hyperparameters,
        "max_attempts": spec.max_attempts, "config_text": spec.config_text, "config_data": spec.config_data,
        "config_sha256": spec.config_sha256, "state": int(run.state), "phase": int(run.phase),
        "progress": run.progress, "progress_seq": run.progress_seq, "attempt": run.attempt,
        "lost_attempts": run.lost_attempts, "released_attempts": run.released_attempts,
        "worker_id": run.worker_id, "lease_expire_time": run.lease_expire_time,
        "resume_checkpoint": run.resume_checkpoint, "registering": run.registering,
        "trained_model": run.trained_model, "stopped_epoch": run.stopped_epoch,
        "max_runtime_seconds": spec.max_runtime_seconds, "max_pending_seconds": spec.max_pending_seconds,
        "effective_learning_rate": spec.effective_learning_rate,
        "split_guard": None if spec.split_guard is None else asdict(spec.split_guard),
        "stopped_by_time_budget": run.stopped_by_time_budget, "pending_deadline": run.pending_deadline,
        "failure": None if failure is None else {
            "kind": int(failure.kind), "message": failure.message, "details": list(failure.details)},
        "transitions": [
            {"from": int(t.from_state), "to": int(t.to_state), "time": t.time.isoformat(), "reason": t.reason,
             "attempt": t.attempt}
            for t in run.transitions
        ],
        "attempts": [
            {"attempt": a.attempt, "batch_size": a.batch_size, "learning_rate": a.learning_rate,
             **({"preempted": True} if a.preempted else {}),
             **({"end": a.end_reason} if a.end_reason else {})}
            for a in run.attempts
        ],
        "create_time": run.create_time, "update_time": run.update_time or run.create_time,
        "start_time": run.start_time, "end_time": run.end_time, "version": run.version,
    }  # fmt: skip


def _to_domain(row: Any) -> TrainingRun:
    failure = row["failure"]
    spec = RunSpec(
        dataset=row["dataset"], model_template=row["model_template"], class_names=tuple(row["class_names"]),
        hyperparameters=dict(row["hyperparameters"]), max_attempts=row["max_attempts"],
        base_model=row["base_model"], base_model_checkpoint=row["base_model_checkpoint"],
        config_text=row["config_text"] if "config_text" in row else "",
        config_data=row["config_data"] if "config_data" in row else {},
        config_sha256=row["config_sha256"],
        dataset_version=row["dataset_version"] if "dataset_version" in row else "",
        dataset_source=(row["dataset_source"] or {}) if "dataset_source" in row else {},
        max_runtime_seconds=row["max_runtime_seconds"], max_pending_seconds=row["max_pending_seconds"],
        effective_learning_rate=row["effective_learning_rate"],
        split_guard=BaseSplit(**row["split_guard"]) if row.get("split_guard") else None,
    )  # fmt: skip
    return TrainingRun(
        id=row["id"], owner=row["owner"], display_name=row["display_name"], spec=spec,
        create_time=row["create_time"], description=row["description"], request_id=row["request_id"] or "",
        state=RunState(row["state"]), phase=Phase(row["phase"]), progress=bytes(row["progress"] or b""),
        progress_seq=row["progress_seq"], attempt=row["attempt"], lost_attempts=row["lost_attempts"],
        released_attempts=row["released_attempts"], worker_id=row["worker_id"],
        lease_expire_time=row["lease_expire_time"], resume_checkpoint=row["resume_checkpoint"],
        registering=bool(row["registering"]), trained_model=row["trained_model"],
        stopped_epoch=row["stopped_epoch"], stopped_by_time_budget=bool(row["stopped_by_time_budget"]),
        pending_deadline=row["pending_deadline"],
        failure=None if failure is None else Failure(
            FailureKind(failure["kind"]), failure["message"], tuple(failure.get("details", ()))),
        update_time=row["update_time"], start_time=row["start_time"], end_time=row["end_time"],
        transitions=[
            Transition(RunState(t["from"]), RunState(t["to"]), datetime.fromisoformat(t["time"]), t["reason"],
                       t["attempt"])
            for t in row["transitions"]
        ],
        attempts=[
            AttemptRecord(a["attempt"], a["batch_size"], a["learning_rate"], bool(a.get("preempted")),
                          a.get("end", ""))
            for a in row["attempts"] or ()
        ],
        version=row["version"],
    )  # fmt: skip
