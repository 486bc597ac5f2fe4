"""Use cases of publication and aliases: publish through the gates (the champion gate moves ``champion``),
unpublish, set and remove a family's aliases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from common import config_gate
from common.auth import Permission, Principal
from common.errors import Aborted, FailedPrecondition
from common.retry import CONFLICTS, Failures
from services.trained_model.adapters.evaluation_repository import EvaluationFilter
from services.trained_model.adapters.repository import DuplicateRow
from services.trained_model.domain.champion_gate import (
    CHAMPION,
    SAME_VERSION_SOURCE,
    CandidateScore,
    decide,
    same_dataset_version,
    stored_test_map,
    validate_alias,
)
from services.trained_model.domain.evaluation import DEFAULT_SPLIT, Evaluation, EvaluationState
from services.trained_model.domain.model import (
    PublicationGate,
    TrainedModel,
    parse_model_name,
    validate_gate_threshold,
)
from services.trained_model.service_layer import authz
from services.trained_model.service_layer.commands import PublishTrainedModel
from services.trained_model.service_layer.unit_of_work import UnitOfWork, UnitOfWorkFactory

DEFAULT_TOLERANCE = 0.005
EVALUATIONS_LOOKED_AT = 50  # newest first; an older one of another split sha256 (a re-split) is never used


class ModelPublication:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Callable[[], datetime],
        *,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.tolerance = tolerance

    async def _managed(self, uow: UnitOfWork, who: Principal, name: str, action: str) -> TrainedModel:
        model = authz.ensure_visible(who, await uow.models.get(parse_model_name(name)), name)
        authz.ensure_manageable(who, model, action)
        return model

    async def publish(self, who: Principal, request: PublishTrainedModel) -> TrainedModel:
        who.require(Permission.PUBLISH_MODELS)
        validate_gate_threshold(request.min_bbox_map)
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
            score = await self._candidate_score(uow, model, champion)
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
    ) -> CandidateScore:
        """The candidate's test bbox mAP on the champion's split: its own stored number when both were
        trained on that dataset version, else its newest succeeded evaluation on that split (same sha256)."""
        if champion is None or not champion.split_sha256:
            return CandidateScore(None)
        if same_dataset_version(model, champion):
            own = stored_test_map(model)
            return CandidateScore(
                own,
                SAME_VERSION_SOURCE if own is not None else "",
                needed=f"{model.name} has no stored test split metrics (its run had no test images)",
            )
        found = await _evaluated(uow, model.id, champion.dataset, champion.split_sha256)
        if found is None:
            return CandidateScore(
                None,
                needed=f"it was trained on another dataset version ({model.dataset or 'none'}), so an "
                f"evaluation of {model.name} on the TEST split of {champion.dataset} (split sha256 "
                f"{champion.split_sha256[:12]}) is needed: run CreateEvaluation for it first",
            )
        return CandidateScore(found.bbox_map or 0.0, found.name)  # proto JSON leaves out a 0

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


async def _evaluated(
    uow: UnitOfWork, model_id: str, dataset_version: str, split_sha256: str
) -> Evaluation | None:
    """The model's newest SUCCEEDED evaluation on the version's test split with that split sha256."""
    flt = EvaluationFilter(
        model_id=model_id,
        dataset_version=dataset_version,
        split=DEFAULT_SPLIT,
        states=(int(EvaluationState.SUCCEEDED),),
    )
    evaluations, _ = await uow.evaluations.list_page(flt, None, EVALUATIONS_LOOKED_AT)
    return next((e for e in evaluations if e.split_sha256 == split_sha256), None)
