"""Use cases of the model registry: read, list, edit, delete, lineage, download, statistics; publication and
aliases are ``publication.py``'s (``ModelRegistry.publication``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from common import update_masks
from common.artifacts import CHUNK, ArtifactStore
from common.auth import Permission, Principal
from common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, require
from common.logging import get_logger
from common.page_tokens import Cursor, decode_cursor, encode_cursor, fingerprint
from common.retry import CONFLICTS, Failures
from services.trained_model.adapters.repository import DuplicateRow, ModelFilter
from services.trained_model.adapters.training_runs import TrainingRunQueries
from services.trained_model.domain.lineage import Lineage, LineageNode, effective_depth
from services.trained_model.domain.model import (
    Artifact,
    ArtifactKind,
    TrainedModel,
    next_version,
    parse_model_name,
)
from services.trained_model.service_layer import authz
from services.trained_model.service_layer.commands import ListTrainedModels, UpdateTrainedModel
from services.trained_model.service_layer.evaluations import Evaluations
from services.trained_model.service_layer.publication import DEFAULT_TOLERANCE, ModelPublication
from services.trained_model.service_layer.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = get_logger("trained_model")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_CHUNK = 4 * 1024 * 1024
EDITABLE = ("display_name", "description")


@dataclass(frozen=True)
class Page:
    models: list[TrainedModel]
    next_page_token: str
    total_size: int


@dataclass(frozen=True)
class Download:
    artifact: Artifact
    total_size: int
    chunks: AsyncIterator[tuple[int, bytes]]


class ModelRegistry:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        store: ArtifactStore,
        training_runs: TrainingRunQueries,
        clock: Callable[[], datetime],
        *,
        publish_tolerance: float = DEFAULT_TOLERANCE,
        evaluations: Evaluations | None = None,
    ) -> None:
        self.uow = uow
        self.store = store
        self.training_runs = training_runs
        self.clock = clock
        self.publication = ModelPublication(uow, clock, tolerance=publish_tolerance, evaluations=evaluations)

    async def _visible(self, uow: UnitOfWork, who: Principal, name: str, field: str = "name") -> TrainedModel:
        return authz.ensure_visible(who, await uow.models.get(parse_model_name(name, field)), name)

    # ------------------------------------------------------------------------------------------------ reads

    async def get(self, who: Principal, name: str) -> TrainedModel:
        who.require(Permission.VIEW_MODELS)
        async with self.uow() as uow:
            return await self._visible(uow, who, name)

    async def statistics(self, who: Principal, name: str) -> TrainedModel:
        who.require(Permission.VIEW_STATISTICS)
        async with self.uow() as uow:
            return await self._visible(uow, who, name)

    async def list(self, who: Principal, query: ListTrainedModels) -> Page:
        who.require(Permission.VIEW_MODELS)
        violations = []
        if query.page_size < 0:
            violations.append(FieldViolation("page_size", "must not be negative"))
        if not 0.0 <= query.min_bbox_map <= 1.0:
            violations.append(FieldViolation("min_bbox_map", "must be within [0, 1]"))
        base_model_id = ""
        if query.base_model:
            try:
                base_model_id = parse_model_name(query.base_model, "base_model")
            except InvalidArgument as exc:
                violations += exc.violations
        require(violations)
        flt = ModelFilter(
            display_name=query.display_name,
            published=query.published,
            base_model_id=base_model_id,
            dataset=query.dataset,
            model_template=query.model_template,
            min_bbox_map=query.min_bbox_map,
            owner=query.owner,
            visible_to=None if who.has(Permission.VIEW_ALL_MODELS) else who.subject,
        )
        query_fingerprint = fingerprint((flt, query.order_by_map))
        cursor = decode_cursor(query.page_token, query_fingerprint)
        if cursor is not None:
            _check_cursor(cursor, query.order_by_map)
        size = min(query.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        async with self.uow() as uow:
            models, total = await uow.models.list_page(flt, query.order_by_map, cursor, size + 1)
        token = ""
        if len(models) > size:
            models = models[:size]
            last = models[-1]
            value: float | str = (
                (last.bbox_map if last.bbox_map is not None else -1.0)
                if query.order_by_map
                else last.create_time.isoformat()
            )
            token = encode_cursor(Cursor(value, last.id), query_fingerprint)
        return Page(models, token, total)

    async def lineage(self, who: Principal, name: str, max_depth: int) -> Lineage:
        who.require(Permission.VIEW_MODELS)
        if max_depth < 0:
            raise InvalidArgument(
                "max_depth must be >= 0", [FieldViolation("max_depth", "must be >= 0 (0 = all)")]
            )
        limit = effective_depth(max_depth)
        async with self.uow() as uow:
            model = await self._visible(uow, who, name)
            seen = {model.id}
            ancestors: list[LineageNode] = []
            current = model
            while current.base_model_id and len(ancestors) < limit:
                parent = await uow.models.get(current.base_model_id)
                if parent is None or parent.id in seen:
                    break
                seen.add(parent.id)
                ancestors.append(LineageNode.of(parent, -(len(ancestors) + 1), authz.can_see(who, parent)))
                current = parent
            descendants: list[LineageNode] = []
            frontier, depth = [model.id], 1
            while frontier and depth <= limit:
                children = [c for c in await uow.models.children_of(frontier) if c.id not in seen]
                seen.update(c.id for c in children)
                descendants += [LineageNode.of(c, depth, authz.can_see(who, c)) for c in children]
                frontier, depth = [c.id for c in children], depth + 1
        return Lineage(LineageNode.of(model, 0), ancestors, descendants)

    async def download(
        self, who: Principal, name: str, kind: ArtifactKind, offset: int, chunk_size: int, filename: str = ""
    ) -> Download:
        who.require(Permission.VIEW_MODELS)
        violations = []
        if offset < 0:
            violations.append(FieldViolation("offset", "must not be negative"))
        if chunk_size < 0 or chunk_size > MAX_CHUNK:
            violations.append(FieldViolation("chunk_size", f"must be within 1..{MAX_CHUNK} (0 = 1 MiB)"))
        require(violations)
        async with self.uow() as uow:
            model = await self._visible(uow, who, name)
        artifact = model.artifact(kind, filename)
        if artifact is None:
            named = f" named {filename[:200]!r}" if filename else ""
            raise NotFound(f"{model.name} has no {kind.value} artifact{named}")
        try:
            size = await asyncio.to_thread(self.store.size, artifact.uri)
        except NotFound as exc:
            raise FailedPrecondition(
                f"the {kind.value} artifact of {model.name} is missing from storage"
            ) from exc
        if artifact.size_bytes and size != artifact.size_bytes:
            raise FailedPrecondition(
                f"the {kind.value} artifact of {model.name} changed in storage since it was recorded"
            )
        if offset > size:
            raise InvalidArgument(
                f"offset {offset} is past the end of the artifact ({size} bytes)",
                [FieldViolation("offset", f"must be within 0..{size}")],
            )
        return Download(artifact, size, self._chunks(artifact.uri, offset, chunk_size or CHUNK))

    async def _chunks(self, key: str, offset: int, chunk_size: int) -> AsyncIterator[tuple[int, bytes]]:
        iterator = self.store.iter_chunks(key, offset, chunk_size)
        done = object()
        try:
            while (item := await asyncio.to_thread(next, iterator, done)) is not done:
                yield item  # type: ignore[misc]
        finally:
            await asyncio.to_thread(iterator.close)  # type: ignore[attr-defined]

    # ---------------------------------------------------------------------------------------------- changes

    async def update(self, who: Principal, cmd: UpdateTrainedModel) -> TrainedModel:
        require(
            update_masks.violations(
                cmd.paths, EDITABLE, {"publish": "use PublishTrainedModel/UnpublishTrainedModel"}
            ),
            "update_mask may only name display_name and description",
        )
        who.require(Permission.EDIT_MODELS)
        display_name = cmd.display_name if "display_name" in cmd.paths else None
        description = cmd.description if "description" in cmd.paths else None
        conflicts = Failures(CONFLICTS)
        while True:
            async with self.uow() as uow:
                model = await self._visible(uow, who, cmd.name, "trained_model.name")
                authz.ensure_manageable(who, model, "edit")
                model.check_etag(cmd.etag)
                read_revision = model.revision
                if model.edit(display_name=display_name, description=description, now=self.clock()):
                    model.version = next_version(await uow.models.max_version(model.display_name))
                    await uow.models.clear_aliases(model.id)  # aliases belong to the family it left
                    model.aliases = []
                try:
                    await uow.models.save(model, read_revision)
                    await uow.commit()
                except DuplicateRow:  # another model took that version number meanwhile
                    if await conflicts.failed():
                        continue
                    raise FailedPrecondition(
                        "could not assign a version number under contention; retry"
                    ) from None
                return model

    async def delete(self, who: Principal, name: str, etag: str) -> None:
        who.require(Permission.DELETE_MODELS)
        async with self.uow() as uow:
            model = await self._visible(uow, who, name)
            authz.ensure_manageable(who, model, "delete")
            model.check_etag(etag)
            model.ensure_deletable(descendants=await uow.models.count_children(model.id), active_runs=False)
        # Raises Unavailable when training_run cannot answer: never delete blindly.
        active = await self.training_runs.has_active_runs(model.name)
        async with self.uow() as uow:
            model.ensure_deletable(descendants=await uow.models.count_children(model.id), active_runs=active)
            await uow.models.delete(model.id, model.revision)
            await uow.models.clear_aliases(model.id)
            await uow.commit()
        # Artifacts only after the row is gone: a failure here leaves orphaned files, never a dangling row.
        for key in model.artifact_keys():
            try:
                await asyncio.to_thread(self.store.delete, key)
            except Exception:
                log.warning("artifact not deleted", model=model.name, key=key, exc_info=True)


def _check_cursor(cursor: Cursor, by_map: bool) -> None:
    try:
        if by_map:
            float(cursor.value)
        elif datetime.fromisoformat(str(cursor.value)).tzinfo is None:
            raise ValueError("naive time")
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(
            "page_token is corrupt", [FieldViolation("page_token", "corrupt cursor")]
        ) from exc
