"""Issue 17: time budgets and preemption in the TrainingRun aggregate (pure domain)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.training_run.domain import budgets
from services.training_run.domain.model import FailureKind, RunSpec, RunState, TrainingRun

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_run(max_pending: float | None = None, max_runtime: float | None = None) -> TrainingRun:
    spec = RunSpec(
        dataset="d", model_template="rtmdet_tiny", class_names=("a",),
        hyperparameters={"batch_size": 4, "learning_rate": 0.004}, max_attempts=3,
        max_pending_seconds=max_pending, max_runtime_seconds=max_runtime,
    )  # fmt: skip
    return TrainingRun.create(id="r1", owner="alice", display_name="run", spec=spec, now=T0)


def test_runtime_counts_leased_time_over_attempts_and_not_queue_time() -> None:
    run = new_run(max_runtime=600)
    run.claim("w1", 1, at(100), LEASE)  # 100 s queued: not counted
    run.release("w1", 1, at(120), "worker shutting down")  # 20 s RUNNING
    assert budgets.runtime_used(run.transitions, at(200)) == timedelta(seconds=20)
    run.claim("w2", 2, at(250), LEASE)  # 130 s queued again
    assert budgets.runtime_used(run.transitions, at(260)) == timedelta(seconds=30)  # still running: to now
    run.request_cancel(at(270))  # CANCELLING is leased time too
    assert budgets.runtime_used(run.transitions, at(280)) == timedelta(seconds=50)


def test_release_is_a_preemption_recorded_on_the_attempt_and_not_a_lost_attempt() -> None:
    run = new_run()
    run.claim("w1", 1, at(1), LEASE)
    run.release("w1", 1, at(2), "worker shutting down", checkpoint="runs/r1/checkpoints/attempt-1/iter_7.pth")
    assert run.state == RunState.PENDING and run.attempt == 2
    assert run.lost_attempts == 0 and run.released_attempts == 1
    first, second = run.attempts
    assert first.preempted and first.end_reason == "preempted: released by w1: worker shutting down"
    assert not second.preempted and second.end_reason == "" and second.attempt == 2
    assert run.resume_checkpoint.endswith("iter_7.pth")
    assert run.transitions[-1].reason.startswith("preempted: released by w1")


def test_a_lost_lease_ends_its_attempt_with_the_reason_but_not_as_preempted() -> None:
    run = new_run()
    run.claim("w1", 1, at(1), LEASE)
    assert run.expire_lease(at(100))
    assert run.lost_attempts == 1
    assert not run.attempts[0].preempted and "expired" in run.attempts[0].end_reason


def test_max_pending_fails_a_run_no_worker_took_and_restarts_on_requeue() -> None:
    run = new_run(max_pending=60)
    assert run.pending_deadline == at(60)
    assert not run.expire_pending(at(59))
    run.claim("w1", 1, at(30), LEASE)
    assert run.pending_deadline is None and not run.expire_pending(at(1000))  # RUNNING: no queue budget
    run.release("w1", 1, at(50), "worker shutting down")
    assert run.pending_deadline == at(110)  # each wait in the queue gets the whole budget
    assert run.expire_pending(at(110))
    assert run.state == RunState.FAILED and run.failure is not None
    assert run.failure.kind == FailureKind.TIMED_OUT and "max_pending of 1m" in run.failure.message
    assert not run.expire_pending(at(2000))  # already final


def test_without_max_pending_a_run_waits_forever() -> None:
    run = new_run()
    assert run.pending_deadline is None and not run.expire_pending(at(10**7))


def test_completion_at_the_time_budget_is_recorded() -> None:
    run = new_run(max_runtime=5)
    run.claim("w1", 1, at(1), LEASE)
    assert run.on_completed(1, at(7), at(900), stopped_by_time_budget=True)
    assert run.stopped_by_time_budget and run.stopped_epoch is None


@pytest.mark.parametrize(
    ("seconds", "problem"),
    [(None, None), (1, None), (30 * 86400, None), (0.5, "0.5s"), (0, "0s"), (30 * 86400 + 1, "30d1s")],
)
def test_budget_limits(seconds: float | None, problem: str | None) -> None:
    found = budgets.budget_problem(seconds)
    assert (found is None) == (problem is None)
    if problem:
        assert found == f"must be between 1s and 30 days, got {problem}"


def test_describe() -> None:
    assert [budgets.describe(s) for s in (5, 90, 3600, 5400, 86400 + 61, 2.5)] == [
        "5s", "1m30s", "1h", "1h30m", "1d1m1s", "2.5s",
    ]  # fmt: skip
