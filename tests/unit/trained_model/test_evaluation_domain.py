"""The Evaluation state machine and its input rules (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.errors import FailedPrecondition, InvalidArgument
from services.trained_model.domain.evaluation import (
    Evaluation,
    EvaluationState,
    check_split,
    check_version_name,
    class_mismatch,
    from_training,
    parse_evaluation_name,
)
from services.trained_model.domain.model import Artifact, ArtifactKind

T0 = datetime(2026, 12, 3, tzinfo=UTC)


def pending() -> Evaluation:
    return Evaluation("e1", "m1", "datasets/d/versions/1", "test", "alice", T0, T0)


def test_a_worker_runs_it_to_success_and_later_reports_change_nothing() -> None:
    e = pending()
    assert e.start(1, "w1", T0 + timedelta(seconds=1))
    assert (e.state, e.attempt, e.worker_id, e.revision) == (EvaluationState.RUNNING, 1, "w1", 2)
    assert e.report_progress(1, {"step": "INFERENCE"}, T0)
    metrics = {"bbox_map": 0.25, "per_class_ap": [{"class_name": "tire", "ap": 0.5}]}
    artifact = Artifact(ArtifactKind.PREDICTIONS, "evaluations/e1/1/p.json", 3, "a" * 64)
    assert e.succeed(1, metrics, [artifact], T0 + timedelta(seconds=9))
    assert e.state is EvaluationState.SUCCEEDED and e.bbox_map == 0.25 and e.artifacts == [artifact]
    assert e.end_time == T0 + timedelta(seconds=9)
    # a duplicate or a late failure after success: dropped, nothing lost
    assert not e.fail(1, "INTERNAL_ERROR", "late", T0)
    assert not e.succeed(2, {"bbox_map": 0.9}, [], T0)
    assert e.state is EvaluationState.SUCCEEDED and e.bbox_map == 0.25


def test_a_stale_attempt_cannot_report_over_a_newer_one() -> None:
    e = pending()
    assert e.start(2, "w2", T0)
    assert not e.start(1, "w1", T0)
    assert not e.succeed(1, {"bbox_map": 0.1}, [], T0)
    assert e.fail(2, "INVALID_DATASET", "damaged", T0)
    assert (e.state, e.failure_kind, e.failure_message) == (
        EvaluationState.FAILED,
        "INVALID_DATASET",
        "damaged",
    )


def test_cancel_wins_over_a_later_result_and_a_final_one_cannot_be_cancelled() -> None:
    e = pending()
    e.start(1, "w1", T0)
    e.cancel("not needed", T0)
    assert e.state is EvaluationState.CANCELLED and e.cancel_reason == "not needed"
    assert not e.succeed(1, {"bbox_map": 0.3}, [], T0)
    with pytest.raises(FailedPrecondition, match="already CANCELLED"):
        e.cancel("again", T0)


def test_names_splits_and_versions_are_checked() -> None:
    assert parse_evaluation_name("evaluations/abc-1") == "abc-1"
    for bad in ("evaluation/abc", "evaluations/", "evaluations/a/b", "abc"):
        with pytest.raises(InvalidArgument):
            parse_evaluation_name(bad)
    assert check_split("") == "test" and check_split("val") == "val"
    with pytest.raises(InvalidArgument, match="split must be one of test, val, train"):
        check_split("validation")
    assert check_version_name("datasets/d-1/versions/3") == "datasets/d-1/versions/3"
    with pytest.raises(InvalidArgument, match="dataset_version"):
        check_version_name("datasets/d-1")


def test_class_mismatch_names_the_classes_on_each_side_and_ignores_order() -> None:
    assert class_mismatch(["tire", "bottle"], ["bottle", "tire"]) == ""
    message = class_mismatch(["tire", "bag"], ["tire", "bottle"])
    assert "the version has classes the model lacks: 'bottle'" in message
    assert "the model has classes the version lacks: 'bag'" in message


def test_a_training_runs_test_evaluation_is_recorded_as_succeeded() -> None:
    on_version = from_training(
        "e2", model_id="m", owner="o", dataset="datasets/d/versions/2", split_sha256="s" * 64,
        training_run_id="r1", metrics={"bbox_map": 0.4}, artifacts=[], now=T0,
    )  # fmt: skip
    assert (on_version.dataset_version, on_version.dataset, on_version.split) == (
        "datasets/d/versions/2",
        "",
        "test",
    )
    assert on_version.state is EvaluationState.SUCCEEDED and on_version.job_published
    plain = from_training(
        "e3", model_id="m", owner="o", dataset="waste/v1", split_sha256="", training_run_id="r2",
        metrics={"bbox_map": 0.4}, artifacts=[], now=T0,
    )  # fmt: skip
    assert (plain.dataset_version, plain.dataset) == ("", "waste/v1")
