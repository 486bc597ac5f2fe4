"""Aliases of a model family and the champion gate of a publication (plain Python).

A family is the models of one display name. An alias (``champion``, or one a user sets, MLflow style) points
at one model of its family. ``champion`` moves only by a publication that passes this gate: the candidate
and the champion are compared on the champion's dataset version TEST split, never on numbers from different
splits (ARCHITECTURE.md: a model's numbers are only compared with numbers from the same version and split).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from common.errors import FieldViolation, InvalidArgument
from services.trained_model.domain.evaluation import DEFAULT_SPLIT, Evaluation, EvaluationState
from services.trained_model.domain.model import PublicationRefused, TrainedModel

CHAMPION = "champion"
MAX_ALIAS = 63
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
SAME_VERSION_SOURCE = "stored test metrics (same dataset version)"
GATE_REQUEST_PREFIX = "publish-gate"  # request_id of an evaluation the gate started (the audit of who did)
MAX_FAILURE_SHOWN = 200


class Outcome(StrEnum):
    """Mirrors ``raven.v1.PublishDecision.Outcome`` by name (without its ``OUTCOME_`` prefix)."""

    NO_CHAMPION = "NO_CHAMPION"
    PASSED = "PASSED"
    FORCED = "FORCED"
    NOT_COMPARABLE = "NOT_COMPARABLE"


@dataclass(frozen=True)
class PublishDecision:
    """The audit record of one gated publication, stored on the published model."""

    outcome: Outcome
    champion: str = ""  # trainedModels/{id}
    dataset_version: str = ""
    split_sha256: str = ""
    candidate_bbox_map: float = 0.0
    champion_bbox_map: float = 0.0
    tolerance: float = 0.0
    candidate_source: str = ""
    message: str = ""
    decided_by: str = ""
    decide_time: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self) | {"outcome": self.outcome.value}
        data["decide_time"] = self.decide_time.isoformat() if self.decide_time else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PublishDecision | None:
        if not data:
            return None
        values = dict(data)
        values["outcome"] = Outcome(values["outcome"])
        when = values.get("decide_time")
        values["decide_time"] = datetime.fromisoformat(when) if when else None
        return cls(**values)


@dataclass(frozen=True)
class CandidateScore:
    """The candidate's test bbox mAP on the champion's split, or why there is none (``needed``)."""

    bbox_map: float | None
    source: str = ""
    needed: str = ""


@dataclass(frozen=True)
class SplitEvaluations:
    """The candidate's evaluations on the champion's test split (one split sha256), as the gate reads them."""

    succeeded: Evaluation | None = None  # the newest SUCCEEDED: its number is the candidate's
    active: Evaluation | None = None  # the newest PENDING or RUNNING: the gate waits for it
    last_ended: Evaluation | None = None  # the newest FAILED or CANCELLED: the gate starts another


def split_evaluations(newest_first: Iterable[Evaluation], split_sha256: str) -> SplitEvaluations:
    """Sorts the model's test split evaluations of the champion's version; one of another split sha256 (a
    version whose split changed) is never used."""
    on_split = [e for e in newest_first if e.split_sha256 == split_sha256 and e.split == DEFAULT_SPLIT]
    ended = (EvaluationState.FAILED, EvaluationState.CANCELLED)
    return SplitEvaluations(
        succeeded=next((e for e in on_split if e.state is EvaluationState.SUCCEEDED), None),
        active=next((e for e in on_split if not e.state.final), None),
        last_ended=next((e for e in on_split if e.state in ended), None),
    )


def gate_request_id(candidate: TrainedModel, champion: TrainedModel, last_ended: Evaluation | None) -> str:
    """The request_id of the evaluation the gate starts: the same for two publishes that saw the same
    evaluations (one evaluation for both, CreateEvaluation's idempotency), another once the last one ended."""
    after = last_ended.id if last_ended is not None else "first"
    return f"{GATE_REQUEST_PREFIX}:{candidate.id}:{champion.id}:{after}"


def awaiting_evaluation(
    candidate: TrainedModel,
    champion: TrainedModel,
    evaluation: Evaluation,
    *,
    started: bool,
    last_ended: Evaluation | None = None,
) -> PublicationRefused:
    """The refusal while the candidate's evaluation on the champion's test split runs: names it, says
    whether the gate just started it (and why the previous one did not count), and what to do next."""
    what = f"{evaluation.name} of {candidate.name} on {champion.dataset} {DEFAULT_SPLIT} split"
    if started:
        step = f"started {what}"
        if last_ended is not None:
            step = f"{_ended(last_ended)}; {step}"
    else:
        step = f"{what} is {evaluation.state.name}"
    return PublicationRefused(
        f"{candidate.name} cannot be compared with the champion {champion.name} yet: "
        f"{_other_version(candidate)}, so it is first scored on the same test split as the champion; {step}; "
        "publish again when it is done (or pass force with the superadmin claim)"
    )


def evaluation_needed(candidate: TrainedModel, champion: TrainedModel, why_not: str = "") -> str:
    """Why the candidate has no number (CandidateScore.needed); ``why_not``: why none can be started."""
    needed = (
        f"{_other_version(candidate)}, so an evaluation of {candidate.name} on the TEST split of "
        f"{champion.dataset} (split sha256 {champion.split_sha256[:12]}) is needed"
    )
    return f"{needed}, and none can be started: {why_not}" if why_not else needed


def _other_version(candidate: TrainedModel) -> str:
    return f"it was trained on another dataset version ({candidate.dataset or 'none'})"


def _ended(evaluation: Evaluation) -> str:
    if evaluation.state is EvaluationState.FAILED:
        reason = f"{evaluation.failure_kind}: {evaluation.failure_message}".strip(": ")
        return f"the latest one, {evaluation.name}, FAILED ({reason[:MAX_FAILURE_SHOWN]})"
    return f"the latest one, {evaluation.name}, was CANCELLED"


def validate_alias(alias: str, field_name: str = "alias") -> None:
    """A settable alias: 1..63 of a-z, 0-9, ``-``, ``_``, starting with a letter; not ``champion``."""
    if not _ALIAS.match(alias):
        raise InvalidArgument(
            f"{field_name} must be 1..{MAX_ALIAS} of a-z, 0-9, '-' and '_', starting with a letter",
            [FieldViolation(field_name, "1..63 of a-z, 0-9, '-', '_', starting with a letter")],
        )
    if alias == CHAMPION:
        raise InvalidArgument(
            "the champion alias moves only by publishing a model (PublishTrainedModel, through its gate)",
            [FieldViolation(field_name, "'champion' is set by PublishTrainedModel only")],
        )


def stored_test_map(model: TrainedModel) -> float | None:
    """The model's stored test split bbox mAP (its own run's test split); None without a test split."""
    test = model.evaluation.get("test")
    if not isinstance(test, dict):
        return None
    return float(test.get("bbox_map", 0.0))  # proto JSON leaves out a 0


def same_dataset_version(candidate: TrainedModel, champion: TrainedModel) -> bool:
    """Both trained on one dataset version and split (so their stored test numbers share the images)."""
    return bool(champion.split_sha256) and (candidate.dataset, candidate.split_sha256) == (
        champion.dataset,
        champion.split_sha256,
    )


def decide(
    candidate: TrainedModel,
    champion: TrainedModel | None,
    score: CandidateScore,
    *,
    tolerance: float,
    force: bool,
    by: str,
    now: datetime,
) -> PublishDecision:
    """The gate's decision, or PublicationRefused (FAILED_PRECONDITION) naming both numbers or the missing
    evaluation. ``force`` turns a refusal into a FORCED decision carrying the refusal's sentence."""
    if champion is None:
        return PublishDecision(
            Outcome.NO_CHAMPION,
            tolerance=tolerance,
            message=f"the {candidate.display_name!r} family has no champion: nothing to compare",
            decided_by=by,
            decide_time=now,
        )
    champion_map = stored_test_map(champion)
    if not champion.split_sha256 or champion_map is None:
        return PublishDecision(
            Outcome.NOT_COMPARABLE,
            champion=champion.name,
            dataset_version=champion.dataset,
            tolerance=tolerance,
            message=f"the champion {champion.name} has no frozen test split (trained on {champion.dataset!r} "
            "without a dataset version test split): nothing honest to compare on",
            decided_by=by,
            decide_time=now,
        )
    base = PublishDecision(
        Outcome.PASSED,
        champion=champion.name,
        dataset_version=champion.dataset,
        split_sha256=champion.split_sha256,
        champion_bbox_map=champion_map,
        tolerance=tolerance,
        candidate_source=score.source,
        decided_by=by,
        decide_time=now,
    )
    refusal = _refusal(candidate, champion, champion_map, score, tolerance)
    if refusal is None:
        assert score.bbox_map is not None
        return _with(
            base,
            candidate_bbox_map=score.bbox_map,
            message=f"test bbox mAP {score.bbox_map:.4f} vs the champion's {champion_map:.4f} "
            f"(tolerance {tolerance:g}) on {_split(champion)}",
        )
    if not force:
        raise PublicationRefused(refusal)
    return _with(
        base,
        outcome=Outcome.FORCED,
        candidate_bbox_map=score.bbox_map if score.bbox_map is not None else 0.0,
        message=refusal,
    )


def _refusal(
    candidate: TrainedModel,
    champion: TrainedModel,
    champion_map: float,
    score: CandidateScore,
    tolerance: float,
) -> str | None:
    if score.bbox_map is None:
        return cannot_compare(candidate, champion, score.needed)
    if score.bbox_map < champion_map - tolerance:
        return (
            f"{candidate.name} has test bbox mAP {score.bbox_map:.4f} on {_split(champion)}, lower than the "
            f"champion {champion.name}'s {champion_map:.4f} by more than the tolerance {tolerance:g}; "
            "pass force with the superadmin claim to publish anyway"
        )
    return None


def cannot_compare(candidate: TrainedModel, champion: TrainedModel, needed: str) -> str:
    """The refusal's sentence when the candidate has no number on the champion's split."""
    return (
        f"{candidate.name} cannot be compared with the champion {champion.name}: {needed}; "
        "or pass force with the superadmin claim"
    )


def _split(champion: TrainedModel) -> str:
    return f"the test split of {champion.dataset} (split sha256 {champion.split_sha256[:12]})"


def _with(decision: PublishDecision, **changes: Any) -> PublishDecision:
    return PublishDecision(**(asdict(decision) | changes))
