"""A run on a plain dataset reference waiting for its implicit dataset version (domain only)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from common.failures import Failure
from common.proto.raven.v1 import datasets_pb2 as pb
from services.training_run.adapters.dataset_mapping import invalid_reason, result_from_proto
from services.training_run.domain.datasets import Dataset, DatasetVersion, Snapshot
from services.training_run.domain.model import (
    FailureKind,
    InvalidTransition,
    JobRequested,
    RunSpec,
    RunState,
    StateChanged,
    TrainingRun,
)
from services.training_run.domain.spec import BaseSplit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
VERSION = "datasets/d1/versions/1"
SOURCE = {"snapshot_sha256": "a" * 64, "split_sha256": "b" * 64}


def waiting() -> TrainingRun:
    spec = RunSpec(dataset="waste/v1", model_template="rtmdet_tiny", class_names=("a",), hyperparameters={},
                   max_attempts=3)  # fmt: skip
    run = TrainingRun.create(id="r1", owner="alice", display_name="run", spec=spec, now=T0)
    run.wait_for_version(VERSION)
    return run


def test_a_waiting_run_has_no_job_and_refuses_claims() -> None:
    run = waiting()
    assert run.awaiting_version and run.state == RunState.PENDING
    assert run.spec.dataset_version == VERSION and run.spec.dataset == "waste/v1"
    assert not [e for e in run.events if isinstance(e, JobRequested)]
    assert [e.to_state for e in run.events if isinstance(e, StateChanged)] == [RunState.PENDING]
    with pytest.raises(InvalidTransition, match=VERSION):
        run.ensure_claimable()


def test_ready_version_queues_the_first_job_once() -> None:
    run = waiting()
    run.events.clear()
    assert run.on_version_ready(SOURCE, T0 + timedelta(seconds=1))
    assert run.spec.dataset_source == SOURCE and not run.awaiting_version
    assert run.events == [JobRequested("r1", 1)]
    run.ensure_claimable()
    assert not run.on_version_ready(SOURCE, T0 + timedelta(seconds=2))  # redelivered: nothing more
    assert run.events == [JobRequested("r1", 1)]


def test_invalid_version_fails_the_run_with_its_reason() -> None:
    run = waiting()
    assert run.on_version_invalid("dataset version x is INVALID: img/4.jpg: empty", T0)
    assert run.state == RunState.FAILED and run.failure is not None
    assert run.failure.kind == FailureKind.INVALID_DATASET and "img/4.jpg" in run.failure.message
    assert not run.on_version_ready(SOURCE, T0)


def test_a_cancelled_waiting_run_ignores_its_version() -> None:
    run = waiting()
    run.request_cancel(T0)
    assert not run.on_version_ready(SOURCE, T0) and not run.on_version_invalid("x", T0)
    assert run.state == RunState.CANCELLED and not run.spec.dataset_source


def test_only_a_new_run_can_start_waiting() -> None:
    run = waiting()
    run.on_version_ready(SOURCE, T0)
    with pytest.raises(InvalidTransition):
        run.wait_for_version(VERSION)  # already has its split


def invalid_version(problems: int, failure: Failure | None = None) -> DatasetVersion:
    snapshot = Snapshot(
        "a" * 64, "dataset_manifests/a.json", "b" * 64, 10, 2, 100, {"all": "annotations.json"}
    )
    version = DatasetVersion.create(
        id="v1", dataset=Dataset("d1", "alice", "waste/v1", T0), owner="alice", snapshot=snapshot, now=T0,
        split_options={"train_fraction": 0.7, "val_fraction": 0.2, "seed": 0},
    )  # fmt: skip
    if failure is not None:
        version.fail(failure, T0)
        return version
    completed = pb.DatasetPreparationCompleted(
        problems=[
            pb.DatasetProblem(file=f"img/{i}.jpg", description="is not an image file (empty)")
            for i in range(problems)
        ]
    )
    version.complete(result_from_proto(completed), T0)
    return version


def test_the_invalid_reason_names_the_first_problems_and_how_many_more() -> None:
    reason = invalid_reason(invalid_version(7))
    assert reason.startswith(
        "dataset version datasets/d1/versions/1 is INVALID: 7 problem(s): img/0.jpg: is not"
    )
    assert "img/4.jpg" in reason and "img/5.jpg" not in reason and "and 2 more" in reason
    assert "GetDatasetVersion datasets/d1/versions/1" in reason


def test_the_invalid_reason_of_a_failed_preparation_is_its_failure() -> None:
    failure = Failure(FailureKind.INVALID_DATASET, "the archive could not be read")
    assert "is INVALID: the archive could not be read." in invalid_reason(invalid_version(0, failure))


def test_the_fine_tune_guard_refusing_the_ready_version_fails_the_run() -> None:
    run = waiting()
    guard = BaseSplit("trainedModels/m1", "survey", "runs/m1/split_manifest.json")
    run.spec = replace(run.spec, split_guard=guard)
    run.events.clear()
    assert run.on_split_overlap("trainedModels/m1 was trained on 2 image(s) ...", T0)
    assert run.state == RunState.FAILED and run.failure is not None
    assert run.failure.kind == FailureKind.INVALID_CONFIG and "2 image(s)" in run.failure.message
    assert not [e for e in run.events if isinstance(e, JobRequested)]
    assert not run.on_split_overlap("again", T0) and not run.on_version_ready(SOURCE, T0)


def test_a_ready_version_the_guard_passed_clears_the_owed_guard() -> None:
    run = waiting()
    run.spec = replace(run.spec, split_guard=BaseSplit("trainedModels/m1", "survey", "k"))
    assert run.on_version_ready(SOURCE, T0)
    assert run.spec.split_guard is None and run.spec.dataset_source == SOURCE
