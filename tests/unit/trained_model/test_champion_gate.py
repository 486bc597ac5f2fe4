"""The champion gate's rule (pure): numbers only from the champion's dataset version test split, a refusal
names both numbers, force records what it overrode, aliases are validated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.errors import InvalidArgument
from services.trained_model.domain.champion_gate import (
    CHAMPION,
    SAME_VERSION_SOURCE,
    CandidateScore,
    Outcome,
    PublishDecision,
    awaiting_evaluation,
    decide,
    gate_request_id,
    same_dataset_version,
    split_evaluations,
    stored_test_map,
    validate_alias,
)
from services.trained_model.domain.evaluation import Evaluation, EvaluationState
from services.trained_model.domain.model import (
    Artifact,
    ArtifactKind,
    PublicationRefused,
    TrainedModel,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPLIT = "5" * 64


def model(
    model_id: str, test_map: float | None, *, dataset: str = "datasets/d/versions/1", split: str = SPLIT
):
    evaluation = {"val": {"bbox_map": 0.9}} | (
        {"test": {"bbox_map": test_map}} if test_map is not None else {}
    )
    return TrainedModel(
        id=model_id, display_name="dumps", version=1, owner="alice",
        checkpoint=Artifact(ArtifactKind.CHECKPOINT, f"runs/{model_id}/best.pth", 1, "a" * 64),
        create_time=T0, update_time=T0, dataset=dataset, split_sha256=split, evaluation=evaluation,
    )  # fmt: skip


def gate(candidate: TrainedModel, champion: TrainedModel | None, score: CandidateScore, force: bool = False):
    return decide(candidate, champion, score, tolerance=0.005, force=force, by="alice", now=T0)


def test_a_candidate_lower_by_more_than_the_tolerance_is_refused_with_both_numbers() -> None:
    champion, candidate = model("champ", 0.5), model("cand", 0.42)
    score = CandidateScore(stored_test_map(candidate), SAME_VERSION_SOURCE)
    with pytest.raises(PublicationRefused) as refused:
        gate(candidate, champion, score)
    text = str(refused.value)
    assert "0.4200" in text and "0.5000" in text and "trainedModels/champ" in text and "force" in text

    forced = gate(candidate, champion, score, force=True)
    assert forced.outcome is Outcome.FORCED and forced.message == text
    assert (forced.candidate_bbox_map, forced.champion_bbox_map) == (0.42, 0.5)
    assert forced.champion == "trainedModels/champ" and forced.split_sha256 == SPLIT


def test_within_the_tolerance_or_better_passes() -> None:
    champion = model("champ", 0.5)
    for value in (0.496, 0.5, 0.7):
        decision = gate(model("cand", value), champion, CandidateScore(value, SAME_VERSION_SOURCE))
        assert decision.outcome is Outcome.PASSED and decision.candidate_bbox_map == value
        assert decision.champion_bbox_map == 0.5 and decision.tolerance == 0.005


def test_without_a_number_for_the_candidate_the_needed_evaluation_is_named() -> None:
    champion = model("champ", 0.5)
    candidate = model("cand", 0.9, dataset="datasets/other/versions/3", split="6" * 64)
    assert not same_dataset_version(candidate, champion)
    needed = "an evaluation of trainedModels/cand on the TEST split of datasets/d/versions/1 is needed"
    with pytest.raises(PublicationRefused, match="an evaluation of trainedModels/cand on the TEST split"):
        gate(candidate, champion, CandidateScore(None, needed=needed))
    assert (
        gate(candidate, champion, CandidateScore(0.55, "evaluations/e1")).candidate_source == "evaluations/e1"
    )


def test_no_champion_or_a_champion_without_a_frozen_split_has_nothing_to_compare() -> None:
    assert gate(model("cand", 0.1), None, CandidateScore(None)).outcome is Outcome.NO_CHAMPION
    plain = model("champ", None, dataset="datasets/dumps-1", split="")
    decision = gate(model("cand", 0.1), plain, CandidateScore(None))
    assert decision.outcome is Outcome.NOT_COMPARABLE and "no frozen test split" in decision.message


def test_a_decision_round_trips_through_its_stored_form() -> None:
    decision = gate(model("cand", 0.6), model("champ", 0.5), CandidateScore(0.6, SAME_VERSION_SOURCE))
    assert PublishDecision.from_dict(decision.to_dict()) == decision
    assert PublishDecision.from_dict({}) is None


def test_same_dataset_version_needs_the_same_split() -> None:
    assert same_dataset_version(model("a", 0.5), model("b", 0.5))
    assert not same_dataset_version(model("a", 0.5, split="7" * 64), model("b", 0.5))
    assert not same_dataset_version(model("a", 0.5, split=""), model("b", 0.5, split=""))


@pytest.mark.parametrize("alias", ["", "Prod", "1st", "a b", "x" * 64, CHAMPION, "ok/../x"])
def test_bad_or_reserved_aliases_are_invalid(alias: str) -> None:
    with pytest.raises(InvalidArgument):
        validate_alias(alias)


def test_good_aliases() -> None:
    for alias in ("staging", "challenger-2", "a", "x" * 63):
        validate_alias(alias)


def evaluation(eval_id: str, state: EvaluationState, minutes: int, split: str = SPLIT) -> Evaluation:
    at = T0 + timedelta(minutes=minutes)
    return Evaluation(
        id=eval_id, model_id="cand", dataset_version="datasets/d/versions/1", split="test", owner="alice",
        create_time=at, update_time=at, state=state, split_sha256=split,
        failure_kind="INTERNAL_ERROR" if state is EvaluationState.FAILED else "", failure_message="oom",
    )  # fmt: skip


def test_the_gate_reads_the_candidates_evaluations_on_the_champions_split() -> None:
    failed = evaluation("e1", EvaluationState.FAILED, 1)
    running = evaluation("e2", EvaluationState.RUNNING, 2)
    other_split = evaluation("e3", EvaluationState.SUCCEEDED, 3, split="9" * 64)  # never counts
    found = split_evaluations([other_split, running, failed], SPLIT)  # newest first
    assert (found.succeeded, found.active, found.last_ended) == (None, running, failed)
    done = evaluation("e4", EvaluationState.SUCCEEDED, 4)
    assert split_evaluations([done, other_split, running], SPLIT).succeeded is done

    champion, candidate = model("champ", 0.5), model("cand", 0.9, dataset="datasets/o/versions/2", split="")
    first, after = gate_request_id(candidate, champion, None), gate_request_id(candidate, champion, failed)
    assert first == gate_request_id(candidate, champion, None) and first != after and len(after) <= 200
    started = str(awaiting_evaluation(candidate, champion, running, started=True, last_ended=failed))
    assert started.startswith("trainedModels/cand cannot be compared with the champion trainedModels/champ")
    assert "the latest one, evaluations/e1, FAILED (INTERNAL_ERROR: oom); started evaluations/e2" in started
    assert "trainedModels/cand on datasets/d/versions/1 test split; publish again when it is done" in started
    waiting = str(awaiting_evaluation(candidate, champion, running, started=False))
    assert "evaluations/e2 of trainedModels/cand on datasets/d/versions/1 test split is RUNNING" in waiting
    assert "started" not in waiting and "'" not in waiting + started
