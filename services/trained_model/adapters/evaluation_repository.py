"""SQL repository for Evaluation (SQLite and PostgreSQL through SQLAlchemy 2 async)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Aborted
from common.page_tokens import Cursor
from services.trained_model.adapters.evaluation_orm import EvaluationRow
from services.trained_model.adapters.orm import TrainedModelRow
from services.trained_model.adapters.repository import DuplicateRow
from services.trained_model.domain.evaluation import Evaluation, EvaluationState
from services.trained_model.domain.model import Artifact, ArtifactKind


@dataclass(frozen=True)
class EvaluationFilter:
    model_id: str = ""
    dataset_version: str = ""
    split: str = ""
    states: tuple[int, ...] = ()
    # Visibility of the caller: None = sees everything; else evaluations of own or published models.
    visible_to: str | None = None


def to_row(e: Evaluation) -> EvaluationRow:
    row = EvaluationRow()
    row.id, row.model_id, row.dataset_version, row.split = e.id, e.model_id, e.dataset_version, e.split
    row.state, row.owner, row.split_sha256, row.dataset = int(e.state), e.owner, e.split_sha256, e.dataset
    row.training_run_id = e.training_run_id or None
    row.request_id = e.request_id or None
    row.attempt, row.worker_id, row.progress, row.metrics = e.attempt, e.worker_id, e.progress, e.metrics
    row.artifacts = [
        {"kind": a.kind.value, "uri": a.uri, "size_bytes": a.size_bytes, "sha256": a.sha256}
        for a in e.artifacts
    ]
    row.inference = e.inference or None
    row.failure_kind, row.failure_message, row.cancel_reason = (
        e.failure_kind,
        e.failure_message,
        e.cancel_reason,
    )
    row.job_published, row.create_time, row.update_time = e.job_published, e.create_time, e.update_time
    row.end_time, row.revision = e.end_time, e.revision
    return row


def to_evaluation(row: EvaluationRow) -> Evaluation:
    return Evaluation(
        id=row.id,
        model_id=row.model_id,
        dataset_version=row.dataset_version,
        split=row.split,
        owner=row.owner,
        create_time=row.create_time,
        update_time=row.update_time,
        state=EvaluationState(row.state),
        split_sha256=row.split_sha256,
        dataset=row.dataset,
        training_run_id=row.training_run_id or "",
        request_id=row.request_id or "",
        attempt=row.attempt,
        worker_id=row.worker_id,
        progress=dict(row.progress or {}),
        metrics=dict(row.metrics or {}),
        artifacts=[
            Artifact(ArtifactKind(a["kind"]), a["uri"], int(a["size_bytes"]), a["sha256"])
            for a in row.artifacts or []
        ],
        inference=dict(row.inference or {}),
        failure_kind=row.failure_kind,
        failure_message=row.failure_message,
        cancel_reason=row.cancel_reason,
        end_time=row.end_time,
        job_published=row.job_published,
        revision=row.revision,
    )


class SqlEvaluationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, evaluation_id: str) -> Evaluation | None:
        row = await self._session.get(EvaluationRow, evaluation_id)
        return to_evaluation(row) if row else None

    async def get_by_request(self, owner: str, request_id: str) -> Evaluation | None:
        row = await self._session.scalar(
            select(EvaluationRow).where(EvaluationRow.owner == owner, EvaluationRow.request_id == request_id)
        )
        return to_evaluation(row) if row else None

    async def get_by_training_run(self, run_id: str) -> Evaluation | None:
        row = await self._session.scalar(select(EvaluationRow).where(EvaluationRow.training_run_id == run_id))
        return to_evaluation(row) if row else None

    async def add(self, evaluation: Evaluation) -> None:
        self._session.add(to_row(evaluation))
        try:
            await self._session.flush()
        except IntegrityError as exc:
            raise DuplicateRow(str(exc.orig)) from exc

    async def save(self, evaluation: Evaluation, read_revision: int) -> None:
        """Write back a changed evaluation; fails when someone else wrote it since ``read_revision``."""
        row = to_row(evaluation)
        values = {c.key: getattr(row, c.key) for c in EvaluationRow.__table__.columns if c.key != "id"}
        result = await self._session.execute(
            update(EvaluationRow)
            .where(EvaluationRow.id == evaluation.id, EvaluationRow.revision == read_revision)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Aborted(f"{evaluation.name} was changed concurrently; read it again and retry")

    async def unpublished(self, limit: int) -> list[Evaluation]:
        """PENDING evaluations whose job was not yet stored in the queue (the relay publishes them)."""
        rows = await self._session.scalars(
            select(EvaluationRow)
            .where(
                EvaluationRow.job_published.is_(False),
                EvaluationRow.state == int(EvaluationState.PENDING),
            )
            .order_by(EvaluationRow.create_time)
            .limit(limit)
        )
        return [to_evaluation(r) for r in rows]

    async def list_page(
        self, flt: EvaluationFilter, after: Cursor | None, limit: int
    ) -> tuple[list[Evaluation], int]:
        """One page, newest first, after the cursor; and the total matching the filter."""
        conditions = _conditions(flt)
        total = await self._session.scalar(select(func.count()).select_from(EvaluationRow).where(*conditions))
        query = select(EvaluationRow).where(*conditions)
        if after is not None:
            at = datetime.fromisoformat(str(after.value))
            query = query.where(
                or_(
                    EvaluationRow.create_time < at,
                    and_(EvaluationRow.create_time == at, EvaluationRow.id < after.id),
                )
            )
        rows = await self._session.scalars(
            query.order_by(EvaluationRow.create_time.desc(), EvaluationRow.id.desc()).limit(limit)
        )
        return [to_evaluation(r) for r in rows], int(total or 0)


def _conditions(flt: EvaluationFilter) -> list[ColumnElement[bool]]:
    t = EvaluationRow
    conditions: list[ColumnElement[bool]] = []
    if flt.visible_to is not None:
        visible = select(TrainedModelRow.id).where(
            or_(TrainedModelRow.owner == flt.visible_to, TrainedModelRow.published.is_(True))
        )
        conditions.append(t.model_id.in_(visible))
    else:  # an evaluation of a deleted model is gone with it
        conditions.append(t.model_id.in_(select(TrainedModelRow.id)))
    if flt.model_id:
        conditions.append(t.model_id == flt.model_id)
    if flt.dataset_version:
        conditions.append(t.dataset_version == flt.dataset_version)
    if flt.split:
        conditions.append(t.split == flt.split)
    if flt.states:
        conditions.append(t.state.in_(list(flt.states)))
    return conditions
