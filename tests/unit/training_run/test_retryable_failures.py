"""A retryable failure (a crashed or killed training child) requeues the run while attempts remain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.training_run.domain.model import Failure, FailureKind, RunSpec, RunState, TrainingRun

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)
CRASH = Failure(FailureKind.CHILD_CRASHED, "the training process was killed by signal 9 (SIGKILL)")


def running(max_attempts: int) -> TrainingRun:
    spec = RunSpec(
        dataset="d", model_template="t", class_names=("a",), hyperparameters={}, max_attempts=max_attempts
    )
    run = TrainingRun.create(id="r1", owner="alice", display_name="run", spec=spec, now=T0)
    run.claim("w1", 1, T0, LEASE)
    return run


def test_a_crashed_child_is_retried_until_max_attempts_then_fails() -> None:
    run = running(max_attempts=2)
    run.heartbeat("w1", 1, T0, LEASE, checkpoint="runs/r1/attempt-1/epoch_1.pth")

    assert run.on_failed(1, CRASH, T0 + timedelta(seconds=1))
    assert run.state == RunState.PENDING and run.attempt == 2 and run.failure is None
    assert run.resume_checkpoint == "runs/r1/attempt-1/epoch_1.pth"

    run.claim("w2", 2, T0 + timedelta(seconds=2), LEASE)
    assert run.on_failed(2, CRASH, T0 + timedelta(seconds=3))
    assert run.state == RunState.FAILED and run.failure == CRASH


def test_a_config_error_is_not_retried() -> None:
    run = running(max_attempts=3)
    failure = Failure(FailureKind.INVALID_CONFIG, "bad config")
    assert run.on_failed(1, failure, T0 + timedelta(seconds=1))
    assert run.state == RunState.FAILED and run.attempt == 1
