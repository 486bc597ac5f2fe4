"""Evaluations: create (validated against the model and the dataset version, queued for a worker), read, list,
cancel, record a training run's own test split evaluation, and apply what workers report.

The job is published after the evaluation row is committed; a publication that fails (NATS down) leaves the
row ``job_published = False`` and the relay (``publish_pending``) publishes it again, deduplicated by its
``Nats-Msg-Id``. Workers report over NATS (``EvaluationEvent``); ``apply_report`` turns each report into one
transition, dropping stale attempts and anything after a final state (a cancel that won stays won).
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.auth import Permission, Principal
from common.errors import Aborted, FailedPrecondition, FieldViolation, NotFound, PermissionDenied, require
from common.inference_settings import inference_of
from common.logging import get_logger
from common.page_tokens import Cursor, decode_cursor, encode_cursor, fingerprint
from common.retry import CONFLICTS, Failures
from services.trained_model.adapters.dataset_versions import DatasetVersions, ResolvedVersion
from services.trained_model.adapters.evaluation_repository import EvaluationFilter
from services.trained_model.adapters.repository import DuplicateRow
from services.trained_model.domain.evaluation import (
    Evaluation,
    check_split,
    check_version_name,
    class_mismatch,
    from_training,
    parse_evaluation_name,
)
from services.trained_model.domain.model import Artifact, ArtifactKind, TrainedModel, parse_model_name
from services.trained_model.service_layer import authz
from services.trained_model.service_layer.unit_of_work import UnitOfWork

log = get_logger("trained_model.evaluations")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_REQUEST_ID = 200
MAX_REASON = 1000


class EvaluationJobs(abc.ABC):
    """Where evaluation jobs and cancel requests go (the JetStream work queue and the control subject)."""

    @abc.abstractmethod
    async def publish(self, evaluation: Evaluation, model: TrainedModel, version: ResolvedVersion) -> None:
        """Stores the job in the queue once (deduplicated by evaluation id); raises on failure."""

    @abc.abstractmethod
    async def cancel(self, evaluation: Evaluation, reason: str) -> None:
        """Tells a running worker to stop (best effort: its late result is dropped anyway)."""


@dataclass(frozen=True)
class CreateEvaluation:
    trained_model: str
    dataset_version: str
    split: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class ListEvaluations:
    page_size: int = 0
    page_token: str = ""
    trained_model: str = ""
    dataset_version: str = ""
    split: str = ""
    states: tuple[int, ...] = ()


@dataclass(frozen=True)
class EvaluationPage:
    evaluations: list[Evaluation]
    next_page_token: str
    total_size: int


@dataclass(frozen=True)
class Report:
    """One worker report (``EvaluationEvent``), free of protobuf."""

    evaluation_id: str
    attempt: int
    kind: str  # "started", "progress", "completed", "failed"
    worker_id: str = ""
    progress: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    artifacts: tuple[Artifact, ...] = ()
    inference: dict[str, Any] | None = None  # how it predicted; None from a worker that does not say
    failure_kind: str = ""
    failure_message: str = ""


class Evaluations:
    def __init__(
        self,
        new_uow: Callable[[], UnitOfWork],
        versions: DatasetVersions,
        jobs: EvaluationJobs | None,
        clock: Callable[[], datetime],
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._new_uow = new_uow
        self._versions = versions
        self._jobs = jobs
        self._clock = clock
        self._new_id = new_id

    # ------------------------------------------------------------------------------------------------ create

    async def create(self, who: Principal, cmd: CreateEvaluation) -> Evaluation:
        model_id = parse_model_name(cmd.trained_model, "trained_model")
        version_name = check_version_name(cmd.dataset_version)
        split = check_split(cmd.split)
        violations = []
        if len(cmd.request_id) > MAX_REQUEST_ID:
            violations.append(FieldViolation("request_id", f"must be at most {MAX_REQUEST_ID} characters"))
        require(violations)
        async with self._new_uow() as uow:
            if cmd.request_id:
                earlier = await uow.evaluations.get_by_request(who.subject, cmd.request_id)
                if earlier is not None:
                    return earlier
            model = authz.ensure_visible(who, await uow.models.get(model_id), cmd.trained_model)
        version = await self._usable_version(who, version_name, split, model)
        now = self._clock()
        evaluation = Evaluation(
            id=self._new_id(), model_id=model.id, dataset_version=version.name, split=split,
            owner=who.subject, create_time=now, update_time=now, split_sha256=version.split_sha256,
            request_id=cmd.request_id,
        )  # fmt: skip
        async with self._new_uow() as uow:
            try:
                await uow.evaluations.add(evaluation)
                await uow.commit()
            except DuplicateRow:  # the same request_id, concurrently
                async with self._new_uow() as again:
                    earlier = await again.evaluations.get_by_request(who.subject, cmd.request_id)
                if earlier is None:
                    raise
                return earlier
        log.info("evaluation created", evaluation=evaluation.name, model=model.name, version=version.name)
        return await self._publish(evaluation, model, version)

    async def _usable_version(
        self, who: Principal, name: str, split: str, model: TrainedModel
    ) -> ResolvedVersion:
        version = await self._versions.resolve(name)
        # visible as DatasetService decides: own versions, or every owner's with datasets.view_all
        if version is None or not who.can_see_owner(version.owner, Permission.VIEW_ALL_DATASETS):
            raise NotFound(f"dataset version {name} does not exist (or was deleted)")
        if not version.ready:
            raise FailedPrecondition(
                f"dataset version {name} is {version.state}, not READY: wait for its preparation "
                "(ravenctl datasets versions get) or pick a READY version"
            )
        mismatch = class_mismatch(list(model.class_names), version.class_names)
        if mismatch:
            raise FailedPrecondition(
                f"{model.name} cannot be evaluated on {name}: {mismatch} (model classes: "
                f"{', '.join(model.class_names)}; version classes: {', '.join(version.class_names)})"
            )
        if version.split_images.get(split, 0) <= 0:
            raise FailedPrecondition(f"dataset version {name} has no {split} images; choose another split")
        return version

    async def _publish(
        self, evaluation: Evaluation, model: TrainedModel, version: ResolvedVersion
    ) -> Evaluation:
        if self._jobs is None:
            return evaluation
        try:
            await self._jobs.publish(evaluation, model, version)
        except Exception as exc:  # the relay publishes it later; the evaluation stays PENDING meanwhile
            log.warning("evaluation job not queued yet", evaluation=evaluation.name, error=str(exc))
            return evaluation
        return await self._mark_published(evaluation.id) or evaluation

    async def _mark_published(self, evaluation_id: str) -> Evaluation | None:
        def published(evaluation: Evaluation) -> bool:
            if evaluation.job_published:
                return False
            evaluation.job_published = True
            evaluation.revision += 1
            return True

        return (await self._update(evaluation_id, published))[0]

    async def _update(
        self, evaluation_id: str, change: Callable[[Evaluation], bool]
    ) -> tuple[Evaluation | None, bool]:
        """Read, ``change`` (True: it changed), save on the revision read, again from a fresh read on a
        conflict: (the evaluation as saved or as read, whether it changed); (None, False) when it is gone."""
        conflicts = Failures(CONFLICTS)
        while True:
            async with self._new_uow() as uow:
                evaluation = await uow.evaluations.get(evaluation_id)
                if evaluation is None:
                    return None, False
                read = evaluation.revision
                if not change(evaluation):
                    return evaluation, False
                try:
                    await uow.evaluations.save(evaluation, read)
                    await uow.commit()
                    return evaluation, True
                except Aborted:
                    if not await conflicts.failed():
                        raise

    async def publish_pending(self, limit: int = 50) -> int:
        """The relay: queue every PENDING evaluation whose job is not stored yet; returns how many."""
        async with self._new_uow() as uow:
            pending = await uow.evaluations.unpublished(limit)
        done = 0
        for evaluation in pending:
            async with self._new_uow() as uow:
                model = await uow.models.get(evaluation.model_id)
            version = await self._versions.resolve(evaluation.dataset_version) if model else None
            if model is None or version is None or not version.ready:
                what = "model" if model is None else "dataset version"
                await self.apply_report(Report(evaluation.id, evaluation.attempt, "failed",
                    failure_kind="INVALID_DATASET" if model else "INVALID_CONFIG",
                    failure_message=f"the {what} was deleted before the evaluation started"))  # fmt: skip
                continue
            if (await self._publish(evaluation, model, version)).job_published:
                done += 1
        return done

    # ------------------------------------------------------------------------------------------------ reads

    async def get(self, who: Principal, name: str) -> Evaluation:
        evaluation_id = parse_evaluation_name(name)
        async with self._new_uow() as uow:
            evaluation = await uow.evaluations.get(evaluation_id)
            model = await uow.models.get(evaluation.model_id) if evaluation else None
        if evaluation is None or model is None or not authz.can_see(who, model):
            raise NotFound(f"{name} does not exist or is not visible to you")
        return evaluation

    async def list(self, who: Principal, query: ListEvaluations) -> EvaluationPage:
        violations = []
        if query.page_size < 0:
            violations.append(FieldViolation("page_size", "must not be negative"))
        require(violations)
        model_id = parse_model_name(query.trained_model, "trained_model") if query.trained_model else ""
        version = check_version_name(query.dataset_version) if query.dataset_version else ""
        split = check_split(query.split) if query.split else ""
        sees_all = who.has(Permission.VIEW_ALL_MODELS)
        flt = EvaluationFilter(
            model_id=model_id, dataset_version=version, split=split,
            states=tuple(sorted(set(query.states))), visible_to=None if sees_all else who.subject,
        )  # fmt: skip
        size = min(query.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        query_print = fingerprint((flt, who.subject))
        after = decode_cursor(query.page_token, query_print)
        async with self._new_uow() as uow:
            found, total = await uow.evaluations.list_page(flt, after, size + 1)
        page, more = found[:size], len(found) > size
        token = ""
        if more and page:
            last = page[-1]
            token = encode_cursor(Cursor(last.create_time.isoformat(), last.id), query_print)
        return EvaluationPage(page, token, total)

    # ------------------------------------------------------------------------------------------------ cancel

    async def cancel(self, who: Principal, name: str, reason: str) -> Evaluation:
        if len(reason) > MAX_REASON:
            require([FieldViolation("reason", f"must be at most {MAX_REASON} characters")])
        current = await self.get(who, name)
        if not who.can_see_owner(current.owner, Permission.VIEW_ALL_MODELS):
            raise PermissionDenied(
                f"only the creator of {name} (or a holder of models.view_all) may cancel it"
            )

        def cancelled(evaluation: Evaluation) -> bool:
            evaluation.cancel(reason or f"cancelled by {who.subject}", self._clock())
            return True

        evaluation, _ = await self._update(current.id, cancelled)
        if evaluation is None:
            raise NotFound(f"{name} does not exist")
        if self._jobs is not None:
            try:
                await self._jobs.cancel(evaluation, evaluation.cancel_reason)
            except Exception as exc:  # the worker's result is dropped anyway
                log.warning("cancel not delivered to the worker", evaluation=name, error=str(exc))
        return evaluation

    # ------------------------------------------------------------------------------------- worker reports

    async def claim(self, evaluation_id: str, attempt: int, worker_id: str) -> str:
        """A worker's claim before it runs a delivered job: '' when granted (the evaluation is RUNNING on
        that attempt), else why it must not run (cancelled or ended meanwhile, a newer attempt, gone); the
        worker then acks the job without running it."""
        evaluation, granted = await self._update(
            evaluation_id, lambda e: e.start(attempt, worker_id, self._clock())
        )
        if evaluation is None:
            return f"evaluations/{evaluation_id} does not exist (its model was deleted)"
        if granted:
            return ""
        if evaluation.state.final:
            return f"{evaluation.name} is {evaluation.state.name}"
        return f"{evaluation.name} is on attempt {evaluation.attempt}, newer than {attempt}"

    async def apply_report(self, report: Report) -> bool:
        """Applies one worker report; False when it was stale or the evaluation is gone or final."""

        def applied(evaluation: Evaluation) -> bool:
            now = self._clock()
            if report.kind == "started":
                return evaluation.start(report.attempt, report.worker_id, now)
            if report.kind == "progress":
                return evaluation.report_progress(report.attempt, report.progress or {}, now)
            if report.kind == "completed":
                return evaluation.succeed(
                    report.attempt, report.metrics or {}, list(report.artifacts), now, report.inference
                )
            return evaluation.fail(report.attempt, report.failure_kind, report.failure_message, now)

        evaluation, changed = await self._update(report.evaluation_id, applied)
        if evaluation is None or not changed:
            return False
        if evaluation.state.final:
            log.info("evaluation finished", evaluation=evaluation.name, state=evaluation.state.name)
        return True


async def record_training_evaluation(uow: UnitOfWork, model: TrainedModel, new_id: str) -> None:
    """In the registration's transaction: the run's own test split evaluation (when it had one) becomes an
    Evaluation of the model, so listing the model's evaluations shows it without scoring it again."""
    test = (model.evaluation or {}).get("test")
    if not test or not model.training_run_id:
        return
    kinds = {
        ArtifactKind.PREDICTIONS, ArtifactKind.EVALUATION_ANALYSIS, ArtifactKind.CONFUSION_MATRIX,
        ArtifactKind.PR_CURVES, *(k for k in ArtifactKind if k.value == "PREDICTION_GALLERY"),
    }  # fmt: skip
    if await uow.evaluations.get_by_training_run(model.training_run_id) is not None:
        return
    await uow.evaluations.add(
        from_training(
            new_id,
            model_id=model.id,
            owner=model.owner,
            dataset=model.dataset,
            split_sha256=model.split_sha256,
            training_run_id=model.training_run_id,
            metrics=test,
            artifacts=[a for a in model.artifacts if a.kind in kinds],
            now=model.create_time,
            # as the worker evaluated the run's test split: by the rule it follows, from the same config
            inference=inference_of(model.config).record(),
        )
    )
