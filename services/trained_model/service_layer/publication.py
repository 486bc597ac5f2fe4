"""Use cases of publication and aliases: publish through the gates (the champion gate moves ``champion``),
unpublish, set and remove a family's aliases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from common import config_gate
from common.auth import Permission, Principal
from common.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound
from common.retry import CONFLICTS, Failures
from services.trained_model.adapters.evaluation_repository import EvaluationFilter
from services.trained_model.adapters.repository import DuplicateRow
from services.trained_model.domain.champion_gate import (
    CHAMPION,
    SAME_VERSION_SOURCE,
    CandidateScore,
    SplitEvaluations,
    awaiting_evaluation,
    cannot_compare,
    decide,
    evaluation_needed,
    gate_request_id,
    same_dataset_version,
    split_evaluations,
    stored_test_map,
    validate_alias,
)
from services.trained_model.domain.evaluation import DEFAULT_SPLIT
from services.trained_model.domain.model import (
    PublicationGate,
    PublicationRefused,
    TrainedModel,
    parse_model_name,
    validate_gate_threshold,
)
from services.trained_model.service_layer import authz
from services.trained_model.service_layer.commands import PublishTrainedModel
from services.trained_model.service_layer.evaluations import CreateEvaluation, Evaluations
from services.trained_model.service_layer.unit_of_work import UnitOfWork, UnitOfWorkFactory

DEFAULT_TOLERANCE = 0.005
EVALUATIONS_LOOKED_AT = 50  # newest first; an older one of another split sha256 (a re-split) is never used


@dataclass(frozen=True)
class _AwaitingEvaluation:
    """The gate needs the candidate's number on the champion's test split and has none yet."""

    model: TrainedModel
    champion: TrainedModel
    found: SplitEvaluations


class ModelPublication:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Callable[[], datetime],
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        evaluations: Evaluations | None = None,
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.tolerance = tolerance
        self.evaluations = evaluations  # where the gate starts a missing evaluation (None: it only asks)

    async def _managed(self, uow: UnitOfWork, who: Principal, name: str, action: str) -> TrainedModel:
        model = authz.ensure_visible(who, await uow.models.get(parse_model_name(name)), name)
        authz.ensure_manageable(who, model, action)
        return model

    async def publish(self, who: Principal, request: PublishTrainedModel) -> TrainedModel:
        """Publishes through the gates. A candidate of another dataset version without a number on the
        champion's test split is refused (FAILED_PRECONDITION) naming the evaluation that gives it one:
        the one already PENDING/RUNNING, else one the gate starts (again after a FAILED/CANCELLED one)."""
        who.require(Permission.PUBLISH_MODELS)
        validate_gate_threshold(request.min_bbox_map)
        outcome = await self._publish_gated(who, request)
        if isinstance(outcome, TrainedModel):
            return outcome
        raise await self._await_evaluation(who, outcome)

    async def _publish_gated(
        self, who: Principal, request: PublishTrainedModel
    ) -> TrainedModel | _AwaitingEvaluation:
        async with self.uow() as uow:
            model = await self._managed(uow, who, request.name, "publish")
            authz.ensure_force_allowed(who, request.force)
            refused = config_gate.problem(model.config)
            if refused:  # a model imported or registered before the gate existed
                raise FailedPrecondition(
                    f"{model.name} cannot be published: its stored config fails the config gate ({refused}); "
                    "import the model again from a config that passes"
                )
            if model.published:
                return model
            best = (
                await uow.models.best_published_map(model.display_name, model.id)
                if request.require_better_than_published
                else None
            )
            gate = PublicationGate(
                request.min_bbox_map, request.require_better_than_published, best, request.force
            )
            if not gate.force:
                gate.check(model)
            holder = await uow.models.alias_holder(model.display_name, CHAMPION)
            champion = await uow.models.get(holder) if holder and holder != model.id else None
            score, found = await self._candidate_score(uow, model, champion)
            if found is not None and champion is not None and not request.force:
                return _AwaitingEvaluation(model, champion, found)  # nothing written: rolled back
            now = self.clock()
            decision = decide(
                model, champion, score, tolerance=self.tolerance, force=request.force, by=who.subject, now=now
            )
            read_revision = model.revision
            model.publish(gate, by=who.subject, now=now)
            model.publish_decision = decision.to_dict()
            await uow.models.save(model, read_revision)
            await uow.models.set_alias(model.display_name, CHAMPION, model.id)
            await uow.commit()
            model.aliases = sorted({*model.aliases, CHAMPION})
            return model

    async def _candidate_score(
        self, uow: UnitOfWork, model: TrainedModel, champion: TrainedModel | None
    ) -> tuple[CandidateScore, SplitEvaluations | None]:
        """The candidate's test bbox mAP on the champion's split: its own stored number when both were
        trained on that dataset version, else its newest succeeded evaluation on that split (same sha256).
        The second value, when there is no such evaluation: what the candidate has on that split."""
        if champion is None or not champion.split_sha256:
            return CandidateScore(None), None
        if same_dataset_version(model, champion):
            own = stored_test_map(model)
            return CandidateScore(
                own,
                SAME_VERSION_SOURCE if own is not None else "",
                needed=f"{model.name} has no stored test split metrics (its run had no test images)",
            ), None
        flt = EvaluationFilter(model_id=model.id, dataset_version=champion.dataset, split=DEFAULT_SPLIT)
        evaluations, _ = await uow.evaluations.list_page(flt, None, EVALUATIONS_LOOKED_AT)
        found = split_evaluations(evaluations, champion.split_sha256)
        if found.succeeded is None:
            return CandidateScore(None, needed=evaluation_needed(model, champion)), found
        best = found.succeeded
        return CandidateScore(best.bbox_map or 0.0, best.name), None  # proto JSON leaves out a 0

    async def _await_evaluation(self, who: Principal, awaiting: _AwaitingEvaluation) -> PublicationRefused:
        """Names the running evaluation, or starts one as the caller (the gate's own step of a publication
        the caller may make: models.publish suffices, evaluations.create is not asked; the evaluation is
        the caller's, as if created by them, with a ``publish-gate:`` request_id recording who started it).
        Two publishes that see the same evaluations start one (the same request_id)."""
        model, champion, found = awaiting.model, awaiting.champion, awaiting.found
        if found.active is not None:
            return awaiting_evaluation(model, champion, found.active, started=False)
        if self.evaluations is None:
            return PublicationRefused(cannot_compare(model, champion, evaluation_needed(model, champion)))
        command = CreateEvaluation(
            model.name, champion.dataset, DEFAULT_SPLIT, gate_request_id(model, champion, found.last_ended)
        )
        try:
            started = await self.evaluations.create(who, command)
        except (FailedPrecondition, NotFound, InvalidArgument) as exc:  # deleted, not READY, other classes
            why = evaluation_needed(model, champion, exc.message)
            return PublicationRefused(cannot_compare(model, champion, why))
        if started.split_sha256 != champion.split_sha256:  # would never count: say so, start nothing more
            why = f"{champion.dataset} has another test split now (split sha256 {started.split_sha256[:12]})"
            why = evaluation_needed(model, champion, why)
            return PublicationRefused(cannot_compare(model, champion, why))
        return awaiting_evaluation(model, champion, started, started=True, last_ended=found.last_ended)

    async def unpublish(self, who: Principal, name: str) -> TrainedModel:
        """Withdraws the publication; a champion loses its alias (the family then has no champion)."""
        who.require(Permission.PUBLISH_MODELS)
        async with self.uow() as uow:
            model = await self._managed(uow, who, name, "unpublish")
            read_revision = model.revision
            model.unpublish(now=self.clock())
            if model.revision != read_revision:
                await uow.models.save(model, read_revision)
                await uow.models.remove_alias(model.id, CHAMPION)
                await uow.commit()
                model.aliases = [a for a in model.aliases if a != CHAMPION]
            return model

    async def set_alias(self, who: Principal, name: str, alias: str) -> TrainedModel:
        who.require(Permission.EDIT_MODELS)
        validate_alias(alias)
        conflicts = Failures(CONFLICTS)
        while True:
            async with self.uow() as uow:
                model = await self._managed(uow, who, name, "set an alias of")
                try:
                    await uow.models.set_alias(model.display_name, alias, model.id)
                    await uow.commit()
                except DuplicateRow:  # another request set this alias of the family meanwhile
                    if await conflicts.failed():
                        continue
                    raise Aborted(f"the alias {alias!r} was changed concurrently; retry") from None
                model.aliases = sorted({*model.aliases, alias})
                return model

    async def delete_alias(self, who: Principal, name: str, alias: str) -> TrainedModel:
        """Removes the alias; a model not holding it is returned unchanged (as Unpublish of an unpublished
        model)."""
        who.require(Permission.EDIT_MODELS)
        validate_alias(alias)
        async with self.uow() as uow:
            model = await self._managed(uow, who, name, "remove an alias of")
            if await uow.models.remove_alias(model.id, alias):
                await uow.commit()
            model.aliases = [a for a in model.aliases if a != alias]
            return model
