"""Registering models: from a completed training run (idempotent per run) and by import of a root model."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from common.artifacts import MODELS_PREFIX, RUNS_PREFIX, ArtifactStore, normalize_key, owner_scope
from common.auth import Permission, Principal
from common.errors import (
    Aborted,
    AppError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
    require,
)
from common.logging import get_logger
from common.mmdet_templates import TEMPLATES
from common.retry import CONFLICTS, Failures
from services.trained_model.adapters.model_import import verify_and_store
from services.trained_model.adapters.repository import DuplicateRow
from services.trained_model.adapters.training_runs import TrainingRunQueries
from services.trained_model.domain.model import (
    Artifact,
    ArtifactKind,
    TrainedModel,
    next_version,
    validate_class_names,
    validate_description,
    validate_display_name,
)
from services.trained_model.service_layer import authz
from services.trained_model.service_layer.commands import ImportTrainedModel, RegisterTrainedModel
from services.trained_model.service_layer.evaluations import record_training_evaluation
from services.trained_model.service_layer.unit_of_work import UnitOfWork

log = get_logger("trained_model.registration")

MAX_REQUEST_ID = 200


@dataclass(frozen=True)
class Registered:
    model: TrainedModel
    created: bool


@dataclass(frozen=True)
class Rejected:
    """The run's output cannot become a model (the checkpoint is missing or not what the worker recorded)."""

    message: str


@dataclass(frozen=True)
class Discarded:
    """The run's cancel won (CANCELLING or CANCELLED in training_run): no model, and nobody waits for one."""

    message: str


class ModelRegistration:
    def __init__(
        self,
        new_uow: Callable[[], UnitOfWork],
        store: ArtifactStore,
        clock: Callable[[], datetime],
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        training_runs: TrainingRunQueries | None = None,
    ) -> None:
        self._new_uow = new_uow
        self._store = store
        self._clock = clock
        self._new_id = new_id
        self._training_runs = training_runs

    async def register_completed(self, cmd: RegisterTrainedModel) -> Registered | Rejected | Discarded:
        """Exactly one model per run: a redelivered or concurrent duplicate finds the first one.

        A run whose cancel won gets none. A registration that passed this check just before the cancel is
        undone by :meth:`discard_cancelled` when training_run announces the run CANCELLED.
        """
        async with self._new_uow() as uow:
            existing = await uow.models.get_by_training_run(cmd.run_id)
        if existing is not None:
            return Registered(existing, created=False)
        if await self._cancel_won(cmd.run_id):
            return Discarded(f"run {cmd.run_id} was cancelled before its completion was registered")
        problem = await asyncio.to_thread(self._checkpoint_problem, cmd)
        if problem:
            return Rejected(problem)
        checkpoint = next(a for a in cmd.artifacts if a.kind is ArtifactKind.CHECKPOINT)
        now = self._clock()
        model_id = self._new_id()

        def build(version: int) -> TrainedModel:
            return TrainedModel(
                id=model_id,
                display_name=cmd.display_name or f"run-{cmd.run_id}",
                version=version,
                owner=cmd.owner,
                checkpoint=checkpoint,
                create_time=now,
                update_time=now,
                training_run_id=cmd.run_id,
                base_model_id=cmd.base_model_id or None,
                dataset=cmd.dataset,
                dataset_snapshot_sha256=cmd.dataset_snapshot_sha256,
                split_sha256=cmd.split_sha256,
                dataset_reference=cmd.dataset_reference,
                class_names=list(cmd.class_names),
                model_template=cmd.model_template,
                config_text=cmd.config_text,
                config=cmd.config,
                config_sha256=cmd.config_sha256,
                artifacts=[a for a in cmd.artifacts if a.kind is not ArtifactKind.CHECKPOINT],
                evaluation=cmd.evaluation,
                bbox_map=cmd.bbox_map,
                training_seconds=cmd.training_seconds,
                parameter_count=cmd.parameter_count,
                framework_versions=cmd.framework_versions,
                seed=cmd.seed,
                epochs=cmd.epochs,
                learning_rate=cmd.learning_rate,
                average_loss=cmd.average_loss,
            )

        conflicts = Failures(CONFLICTS)
        while True:
            async with self._new_uow() as uow:
                existing = await uow.models.get_by_training_run(cmd.run_id)
                if existing is not None:
                    return Registered(existing, created=False)
                model = build(
                    next_version(await uow.models.max_version(cmd.display_name or f"run-{cmd.run_id}"))
                )
                try:
                    await uow.models.add(model)
                    await record_training_evaluation(uow, model, self._new_id())
                    await uow.commit()
                except DuplicateRow:
                    # same run registered concurrently, or the version number was taken: look again
                    if await conflicts.failed():
                        continue
                    raise FailedPrecondition(
                        f"could not register the model of run {cmd.run_id} under contention; will retry"
                    ) from None
                log.info("model registered", model=model.name, run_id=cmd.run_id, version=model.version)
                return Registered(model, created=True)

    async def _cancel_won(self, run_id: str) -> bool:
        if self._training_runs is None:
            return False
        try:
            return await self._training_runs.cancel_won(run_id)
        except Unavailable as exc:
            # Registration must not wait on training_run (a long outage would dead-letter the completion);
            # a cancel that won is still undone by the CANCELLED announcement.
            log.warning("run state unknown; registering", run_id=run_id, reason=exc.message)
            return False

    async def discard_cancelled(self, run_id: str) -> str | None:
        """Removes the model of a run that ended CANCELLED (completed after cancel: the cancel won); returns
        the removed model's id. The run's files stay where the run wrote them."""
        conflicts = Failures(CONFLICTS)
        while True:
            async with self._new_uow() as uow:
                model = await uow.models.get_by_training_run(run_id)
                if model is None:
                    return None
                try:
                    await uow.models.delete(model.id, model.revision)
                    await uow.commit()
                except Aborted:
                    if await conflicts.failed():
                        continue
                    raise
            log.info("model of a cancelled run removed", model=model.name, run_id=run_id)
            return model.id

    def _checkpoint_problem(self, cmd: RegisterTrainedModel) -> str:
        checkpoints = [a for a in cmd.artifacts if a.kind is ArtifactKind.CHECKPOINT]
        if not checkpoints:
            return "the completed event lists no CHECKPOINT artifact"
        checkpoint = checkpoints[0]
        try:
            actual = self._store.sha256(checkpoint.uri)
        except NotFound:
            return f"checkpoint {checkpoint.uri!r} is missing from the artifact store"
        except AppError as exc:
            return f"checkpoint key {checkpoint.uri!r} is invalid: {exc.message}"
        if actual != checkpoint.sha256.lower():
            return (
                f"checkpoint {checkpoint.uri!r} has sha256 {actual} in the artifact store; the run recorded "
                f"{checkpoint.sha256 or '(none)'}: the upload is corrupt or was replaced; rerun the training"
            )
        return ""

    async def import_model(self, who: Principal, cmd: ImportTrainedModel) -> TrainedModel:
        who.require(Permission.IMPORT_MODELS)
        config_key, checkpoint_key = _validate_import(cmd)
        await self._ensure_visible_key(who, "config_uri", config_key)
        await self._ensure_visible_key(who, "checkpoint_uri", checkpoint_key)
        if cmd.request_id:
            async with self._new_uow() as uow:
                existing = await uow.models.get_by_import_request(who.subject, cmd.request_id)
            if existing is not None:
                return existing
        model_id = self._new_id()
        prefix = f"{MODELS_PREFIX}/{model_id}"
        files = await asyncio.to_thread(
            verify_and_store, self._store, config_key, checkpoint_key, list(cmd.class_names), prefix
        )
        now = self._clock()
        stored = files.checkpoint_artifact
        conflicts = Failures(CONFLICTS)
        try:
            while True:
                async with self._new_uow() as uow:
                    model = TrainedModel(
                        id=model_id,
                        display_name=cmd.display_name,
                        version=next_version(await uow.models.max_version(cmd.display_name)),
                        owner=who.subject,
                        description=cmd.description,
                        checkpoint=Artifact(
                            ArtifactKind.CHECKPOINT, stored.key, stored.size_bytes, stored.sha256
                        ),
                        create_time=now,
                        update_time=now,
                        class_names=list(cmd.class_names),
                        model_template=cmd.model_template,
                        config_text=files.config.text,
                        config=files.config.data,
                        config_sha256=files.config.sha256,
                        artifacts=[
                            Artifact(
                                ArtifactKind.CONFIG,
                                files.config_artifact.key,
                                files.config_artifact.size_bytes,
                                files.config_artifact.sha256,
                            )
                        ],
                        parameter_count=files.parameter_count,
                        import_request_id=cmd.request_id or None,
                    )
                    try:
                        await uow.models.add(model)
                        await uow.commit()
                    except DuplicateRow:
                        if cmd.request_id:
                            existing = await self._by_request(who.subject, cmd.request_id)
                            if existing is not None:
                                await asyncio.to_thread(self._store.delete_prefix, prefix)
                                return existing
                        if await conflicts.failed():
                            continue
                        raise FailedPrecondition(
                            "could not assign a version number under contention; retry"
                        ) from None
                    return model
        except BaseException:  # the stored files go with the failed import (contention included)
            await asyncio.to_thread(self._store.delete_prefix, prefix)
            raise

    async def _ensure_visible_key(self, who: Principal, field: str, key: str) -> None:
        """A key under another owner's run or model is NOT_FOUND unless the caller may see that owner's
        resources: importing must not copy weights the caller could not download."""
        scope = owner_scope(key)
        if scope is None:
            return
        prefix, owner_id = scope
        async with self._new_uow() as uow:
            if prefix == RUNS_PREFIX:
                model = await uow.models.get_by_training_run(owner_id)
            else:
                model = await uow.models.get(owner_id)
        if model is not None and authz.can_see(who, model):
            return
        if prefix == RUNS_PREFIX and self._training_runs is not None:
            # Unavailable when training_run cannot answer: never import blindly.
            owner = await self._training_runs.run_owner(owner_id)
            if owner is not None and who.can_see_owner(owner, Permission.VIEW_ALL_TRAINING_RUNS):
                return
        raise NotFound(f"{field}: {key!r} does not exist or is not visible to you")

    async def _by_request(self, owner: str, request_id: str) -> TrainedModel | None:
        async with self._new_uow() as uow:
            return await uow.models.get_by_import_request(owner, request_id)


def _validate_import(cmd: ImportTrainedModel) -> tuple[str, str]:
    violations = validate_display_name(cmd.display_name) + validate_description(cmd.description)
    violations += validate_class_names(list(cmd.class_names))
    keys: list[str] = []
    for field, value in (("config_uri", cmd.config_uri), ("checkpoint_uri", cmd.checkpoint_uri)):
        try:
            keys.append(normalize_key(value))
        except InvalidArgument as exc:
            violations.append(FieldViolation(field, exc.message))
    if cmd.model_template and cmd.model_template not in TEMPLATES:
        violations.append(FieldViolation("model_template", f"unknown; one of {sorted(TEMPLATES)} or empty"))
    if len(cmd.request_id) > MAX_REQUEST_ID:
        violations.append(FieldViolation("request_id", f"at most {MAX_REQUEST_ID} characters"))
    require(violations)
    return keys[0], keys[1]
