"""Issue 17: the training time an attempt has left of its run's max_runtime (pure)."""

from __future__ import annotations

from common.proto.raven.v1 import training_run_pb2
from services.trainer_worker.domain.budget import budget_of, training_budget


def test_training_budget() -> None:
    assert training_budget(None, 100, 5) is None
    assert training_budget(60, 0, 2.5) == 57.5
    assert training_budget(60, 50, 5) == 5
    assert training_budget(60, 70, 0) == 0  # spent: one iteration still trains, then it stops


def test_budget_of_a_claimed_run() -> None:
    run = training_run_pb2.TrainingRun()
    assert budget_of(run, 3) is None
    run.max_runtime.seconds = 60
    run.runtime_used.seconds = 20
    assert budget_of(run, 3) == 37
