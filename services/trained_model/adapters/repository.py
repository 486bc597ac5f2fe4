"""SQL repository for TrainedModel (SQLite and PostgreSQL through SQLAlchemy 2 async)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Aborted
from common.page_tokens import Cursor
from services.trained_model.adapters.orm import ModelAliasRow, TrainedModelRow
from services.trained_model.domain.model import Artifact, ArtifactKind, TrainedModel

NO_MAP = -1.0  # sorts models without an evaluation after every evaluated one when ordering by mAP


class DuplicateRow(Exception):
    """An insert hit a unique constraint (same training run or import request, or a taken version number)."""


@dataclass(frozen=True)
class ModelFilter:
    display_name: str = ""
    published: bool | None = None
    base_model_id: str = ""
    dataset: str = ""
    model_template: str = ""
    min_bbox_map: float = 0.0
    owner: str = ""
    # Visibility of the caller: None = sees everything; else own models plus published ones.
    visible_to: str | None = None


def to_row(model: TrainedModel) -> TrainedModelRow:
    row = TrainedModelRow()
    _fill_row(row, model)
    return row


def _fill_row(row: TrainedModelRow, m: TrainedModel) -> None:
    row.id = m.id
    row.display_name = m.display_name
    row.version = m.version
    row.description = m.description
    row.training_run_id = m.training_run_id
    row.base_model_id = m.base_model_id
    row.dataset = m.dataset
    row.dataset_snapshot_sha256 = m.dataset_snapshot_sha256
    row.split_sha256 = m.split_sha256
    row.dataset_reference = m.dataset_reference
    row.class_names = list(m.class_names)
    row.model_template = m.model_template
    row.config_text = m.config_text
    row.config = m.config
    row.config_sha256 = m.config_sha256
    row.checkpoint_uri = m.checkpoint.uri
    row.checkpoint_size = m.checkpoint.size_bytes
    row.checkpoint_sha256 = m.checkpoint.sha256
    row.artifacts = [
        {"kind": a.kind.value, "uri": a.uri, "size_bytes": a.size_bytes, "sha256": a.sha256}
        for a in m.artifacts
    ]
    row.evaluation = m.evaluation
    row.bbox_map = m.bbox_map
    row.training_seconds = m.training_seconds
    row.parameter_count = m.parameter_count
    row.framework_versions = dict(m.framework_versions)
    row.seed = m.seed
    row.epochs = m.epochs
    row.learning_rate = m.learning_rate
    row.average_loss = m.average_loss
    row.owner = m.owner
    row.published = m.published
    row.published_by = m.published_by
    row.publish_time = m.publish_time
    row.create_time = m.create_time
    row.update_time = m.update_time
    row.revision = m.revision
    row.import_request_id = m.import_request_id
    row.publish_decision = m.publish_decision or None


def to_model(row: TrainedModelRow) -> TrainedModel:
    return TrainedModel(
        id=row.id,
        display_name=row.display_name,
        version=row.version,
        owner=row.owner,
        checkpoint=Artifact(
            ArtifactKind.CHECKPOINT, row.checkpoint_uri, row.checkpoint_size, row.checkpoint_sha256
        ),
        create_time=row.create_time,
        update_time=row.update_time,
        description=row.description,
        training_run_id=row.training_run_id,
        base_model_id=row.base_model_id,
        dataset=row.dataset,
        dataset_snapshot_sha256=row.dataset_snapshot_sha256,
        split_sha256=row.split_sha256,
        dataset_reference=row.dataset_reference,
        class_names=list(row.class_names),
        model_template=row.model_template,
        config_text=row.config_text,
        config=dict(row.config),
        config_sha256=row.config_sha256,
        artifacts=[
            Artifact(ArtifactKind(a["kind"]), a["uri"], int(a["size_bytes"]), a["sha256"])
            for a in row.artifacts
        ],
        evaluation=dict(row.evaluation),
        bbox_map=row.bbox_map,
        training_seconds=row.training_seconds,
        parameter_count=row.parameter_count,
        framework_versions=dict(row.framework_versions),
        seed=row.seed,
        epochs=row.epochs,
        learning_rate=row.learning_rate,
        average_loss=row.average_loss,
        published=row.published,
        published_by=row.published_by,
        publish_time=row.publish_time,
        revision=row.revision,
        import_request_id=row.import_request_id,
        publish_decision=dict(row.publish_decision or {}),
    )


class SqlModelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _models(self, rows: Sequence[TrainedModelRow]) -> list[TrainedModel]:
        """Rows as models with their aliases (one query for all of them)."""
        models = [to_model(r) for r in rows]
        if models:
            found = await self._session.execute(
                select(ModelAliasRow.model_id, ModelAliasRow.alias)
                .where(ModelAliasRow.model_id.in_([m.id for m in models]))
                .order_by(ModelAliasRow.alias)
            )
            aliases: dict[str, list[str]] = {}
            for model_id, alias in found:
                aliases.setdefault(model_id, []).append(alias)
            for m in models:
                m.aliases = aliases.get(m.id, [])
        return models

    async def _one(self, row: TrainedModelRow | None) -> TrainedModel | None:
        return (await self._models([row]))[0] if row is not None else None

    async def get(self, model_id: str) -> TrainedModel | None:
        return await self._one(await self._session.get(TrainedModelRow, model_id))

    async def get_many(self, model_ids: Sequence[str]) -> list[TrainedModel]:
        if not model_ids:
            return []
        rows = await self._session.scalars(
            select(TrainedModelRow).where(TrainedModelRow.id.in_(list(model_ids)))
        )
        return await self._models(list(rows))

    async def get_by_training_run(self, run_id: str) -> TrainedModel | None:
        row = await self._session.scalar(
            select(TrainedModelRow).where(TrainedModelRow.training_run_id == run_id)
        )
        return await self._one(row)

    async def get_by_import_request(self, owner: str, request_id: str) -> TrainedModel | None:
        row = await self._session.scalar(
            select(TrainedModelRow).where(
                TrainedModelRow.owner == owner, TrainedModelRow.import_request_id == request_id
            )
        )
        return await self._one(row)

    async def max_version(self, display_name: str) -> int | None:
        value = await self._session.scalar(
            select(func.max(TrainedModelRow.version)).where(TrainedModelRow.display_name == display_name)
        )
        return int(value) if value is not None else None

    async def add(self, model: TrainedModel) -> None:
        self._session.add(to_row(model))
        try:
            await self._session.flush()
        except IntegrityError as exc:
            raise DuplicateRow(str(exc.orig)) from exc

    async def save(self, model: TrainedModel, read_revision: int) -> None:
        """Write back an edited model; fails when someone else wrote it since ``read_revision``."""
        values = {
            c.key: getattr(to_row(model), c.key) for c in TrainedModelRow.__table__.columns if c.key != "id"
        }
        try:
            result = await self._session.execute(
                update(TrainedModelRow)
                .where(TrainedModelRow.id == model.id, TrainedModelRow.revision == read_revision)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        except IntegrityError as exc:
            raise DuplicateRow(str(exc.orig)) from exc
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Aborted(f"{model.name} was changed concurrently; read it again and retry")

    async def delete(self, model_id: str, read_revision: int) -> None:
        result = await self._session.execute(
            delete(TrainedModelRow).where(
                TrainedModelRow.id == model_id, TrainedModelRow.revision == read_revision
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Aborted(f"trainedModels/{model_id} was changed concurrently; read it again and retry")

    async def count_by_published(self) -> dict[bool, int]:
        statement = select(TrainedModelRow.published, func.count()).group_by(TrainedModelRow.published)
        found = {bool(published): int(n) for published, n in await self._session.execute(statement)}
        return {False: found.get(False, 0), True: found.get(True, 0)}

    async def configs_after(self, after_id: str, limit: int) -> list[tuple[str, bool, dict[str, Any]]]:
        """``(id, published, stored config)`` of up to ``limit`` models with ids after ``after_id``."""
        statement = (
            select(TrainedModelRow.id, TrainedModelRow.published, TrainedModelRow.config)
            .where(TrainedModelRow.id > after_id)
            .order_by(TrainedModelRow.id)
            .limit(limit)
        )
        return [(i, bool(p), dict(c or {})) for i, p, c in await self._session.execute(statement)]

    async def count_children(self, model_id: str) -> int:
        value = await self._session.scalar(
            select(func.count()).select_from(TrainedModelRow).where(TrainedModelRow.base_model_id == model_id)
        )
        return int(value or 0)

    async def children_of(self, model_ids: Sequence[str]) -> list[TrainedModel]:
        if not model_ids:
            return []
        rows = await self._session.scalars(
            select(TrainedModelRow)
            .where(TrainedModelRow.base_model_id.in_(list(model_ids)))
            .order_by(TrainedModelRow.create_time, TrainedModelRow.id)
        )
        return await self._models(list(rows))

    async def best_published_map(self, display_name: str, exclude_id: str) -> float | None:
        value = await self._session.scalar(
            select(func.max(func.coalesce(TrainedModelRow.bbox_map, NO_MAP))).where(
                TrainedModelRow.display_name == display_name,
                TrainedModelRow.published.is_(True),
                TrainedModelRow.id != exclude_id,
            )
        )
        return float(value) if value is not None else None

    async def list_page(
        self, flt: ModelFilter, by_map: bool, after: Cursor | None, limit: int
    ) -> tuple[list[TrainedModel], int]:
        """One page (newest or best first) after the cursor, and the total matching the filter."""
        conditions = _conditions(flt)
        total = await self._session.scalar(
            select(func.count()).select_from(TrainedModelRow).where(*conditions)
        )
        sort_col: Any = (
            func.coalesce(TrainedModelRow.bbox_map, NO_MAP) if by_map else TrainedModelRow.create_time
        )
        query = select(TrainedModelRow).where(*conditions)
        if after is not None:
            value = float(after.value) if by_map else datetime.fromisoformat(str(after.value))
            query = query.where(or_(sort_col < value, and_(sort_col == value, TrainedModelRow.id < after.id)))
        rows = await self._session.scalars(
            query.order_by(sort_col.desc(), TrainedModelRow.id.desc()).limit(limit)
        )
        return await self._models(list(rows)), int(total or 0)

    # ------------------------------------------------------------------------------------------ aliases

    async def alias_holder(self, display_name: str, alias: str) -> str | None:
        """The id of the model of the family holding ``alias``, if any."""
        return await self._session.scalar(
            select(ModelAliasRow.model_id).where(
                ModelAliasRow.display_name == display_name, ModelAliasRow.alias == alias
            )
        )

    async def set_alias(self, display_name: str, alias: str, model_id: str) -> None:
        """Points the family's alias at the model (whoever held it loses it)."""
        await self._session.execute(
            delete(ModelAliasRow).where(
                ModelAliasRow.display_name == display_name, ModelAliasRow.alias == alias
            )
        )
        self._session.add(ModelAliasRow(display_name=display_name, alias=alias, model_id=model_id))
        try:
            await self._session.flush()
        except IntegrityError as exc:  # another transaction set it meanwhile
            raise DuplicateRow(str(exc.orig)) from exc

    async def remove_alias(self, model_id: str, alias: str) -> bool:
        result = await self._session.execute(
            delete(ModelAliasRow).where(ModelAliasRow.model_id == model_id, ModelAliasRow.alias == alias)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def clear_aliases(self, model_id: str) -> None:
        await self._session.execute(delete(ModelAliasRow).where(ModelAliasRow.model_id == model_id))


def _conditions(flt: ModelFilter) -> list[ColumnElement[bool]]:
    t = TrainedModelRow
    conditions: list[ColumnElement[bool]] = []
    if flt.visible_to is not None:
        conditions.append(or_(t.owner == flt.visible_to, t.published.is_(True)))
    if flt.display_name:
        conditions.append(t.display_name == flt.display_name)
    if flt.published is not None:
        conditions.append(t.published.is_(flt.published))
    if flt.base_model_id:
        conditions.append(t.base_model_id == flt.base_model_id)
    if flt.dataset:  # a plain reference also matches the models trained on its implicit versions
        conditions.append(or_(t.dataset == flt.dataset, t.dataset_reference == flt.dataset))
    if flt.model_template:
        conditions.append(t.model_template == flt.model_template)
    if flt.min_bbox_map > 0:
        conditions.append(t.bbox_map >= flt.min_bbox_map)
    if flt.owner:
        conditions.append(t.owner == flt.owner)
    return conditions
