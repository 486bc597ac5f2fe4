"""The TrainingRun state machine.

Every legal transition, every illegal one, leases, fencing, history, events.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.training_run.domain.model import (
    ALLOWED_TRANSITIONS,
    CancelRequested,
    Failure,
    FailureKind,
    InvalidTransition,
    JobRequested,
    LeaseConflict,
    Phase,
    RunSpec,
    RunState,
    StateChanged,
    TrainingRun,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)
S = RunState


def new_run(max_attempts: int = 3) -> TrainingRun:
    spec = RunSpec(
        dataset="d",
        model_template="rtmdet_tiny",
        class_names=("a",),
        hyperparameters={},
        max_attempts=max_attempts,
    )
    return TrainingRun.create(id="r1", owner="alice", display_name="run", spec=spec, now=T0)


def running(max_attempts: int = 3) -> TrainingRun:
    run = new_run(max_attempts)
    run.claim("w1", 1, T0, LEASE)
    return run


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# Ways to reach each state, used to try every (state, action) pair.
def in_state(state: RunState) -> TrainingRun:
    run = running()
    if state == S.PENDING:
        return new_run()
    if state == S.CANCELLING:
        run.request_cancel(at(1))
    elif state == S.SUCCEEDED:
        run.on_completed(1, at(1), at(100))
        run.on_model_registered("trainedModels/m1", at(2))
    elif state == S.FAILED:
        run.on_failed(1, Failure(FailureKind.OUT_OF_MEMORY, "oom"), at(1))
    elif state == S.CANCELLED:
        run.request_cancel(at(1))
        run.on_cancelled(1, at(2))
    assert run.state == state
    return run


def test_create_is_pending_with_history_and_a_job() -> None:
    run = new_run()
    assert run.state == S.PENDING and run.attempt == 1
    assert [(t.from_state, t.to_state, t.reason) for t in run.transitions] == [
        (S.UNSPECIFIED, S.PENDING, "created")
    ]
    assert isinstance(run.events[0], StateChanged) and run.events[1] == JobRequested("r1", 1)


def test_claim_leases_the_current_attempt() -> None:
    run = new_run()
    run.claim("w1", 1, T0, LEASE)
    assert run.state == S.RUNNING and run.worker_id == "w1" and run.lease_expire_time == T0 + LEASE
    assert run.start_time == T0


@pytest.mark.parametrize("state", [S.CANCELLING, S.CANCELLED, S.SUCCEEDED, S.FAILED])
def test_claim_refused_for_cancelled_and_finished_runs(state: RunState) -> None:
    with pytest.raises(InvalidTransition):
        in_state(state).claim("w2", 1, at(5), LEASE)


def test_claim_refused_when_leased_or_stale_but_idempotent_for_same_worker() -> None:
    run = running()
    with pytest.raises(LeaseConflict):
        run.claim("w2", 1, at(1), LEASE)
    run.claim("w1", 1, at(1), LEASE)  # retried claim of the same worker
    assert run.lease_expire_time == at(1) + LEASE
    pending = new_run()
    with pytest.raises(LeaseConflict):
        pending.claim("w1", 2, T0, LEASE)


def test_heartbeat_extends_lease_records_checkpoint_and_reports_cancel() -> None:
    run = running()
    assert run.heartbeat("w1", 1, at(10), LEASE, "ckpt/epoch_1.pth") is False
    assert run.lease_expire_time == at(10) + LEASE and run.resume_checkpoint == "ckpt/epoch_1.pth"
    run.request_cancel(at(11))
    assert run.heartbeat("w1", 1, at(12), LEASE) is True


@pytest.mark.parametrize(("worker", "attempt", "when"), [("w2", 1, 1), ("w1", 2, 1), ("w1", 1, 31)])
def test_heartbeat_refused_for_foreign_stale_or_expired_lease(worker: str, attempt: int, when: float) -> None:
    with pytest.raises(LeaseConflict):
        running().heartbeat(worker, attempt, at(when), LEASE)


def test_expired_lease_requeues_keeping_checkpoint_then_fails_when_attempts_exhausted() -> None:
    run = running(max_attempts=2)
    run.heartbeat("w1", 1, at(1), LEASE, "ckpt/a.pth")
    assert run.expire_lease(at(5)) is False  # not expired yet
    assert run.expire_lease(at(40)) is True
    assert (run.state, run.attempt, run.resume_checkpoint) == (S.PENDING, 2, "ckpt/a.pth")
    assert JobRequested("r1", 2) in run.events
    run.claim("w2", 2, at(41), LEASE)
    assert run.expire_lease(at(80)) is True
    assert run.state == S.FAILED and run.failure is not None and run.failure.kind == FailureKind.WORKER_LOST
    assert run.end_time == at(80)


def test_release_requeues_without_counting_toward_max_attempts() -> None:
    run = running(max_attempts=1)
    run.release("w1", 1, at(1), "shutdown", "ckpt/b.pth")
    assert (run.state, run.attempt, run.released_attempts, run.lost_attempts) == (S.PENDING, 2, 1, 0)
    run.claim("w2", 2, at(2), LEASE)
    run.expire_lease(at(100))
    assert run.state == S.FAILED  # max_attempts=1: the one lost lease exhausts it, the release did not count


def test_release_while_cancelling_cancels() -> None:
    run = in_state(S.CANCELLING)
    run.release("w1", 1, at(2))
    assert run.state == S.CANCELLED


def test_cancel_pending_is_immediate_and_running_asks_the_worker() -> None:
    pending = new_run()
    pending.request_cancel(at(1), "no longer needed")
    assert pending.state == S.CANCELLED and pending.transitions[-1].reason == "no longer needed"
    run = running()
    run.request_cancel(at(1))
    assert run.state == S.CANCELLING and CancelRequested("r1", 1, "cancelled by the user") in run.events
    run.request_cancel(at(2))  # idempotent
    assert run.on_cancelled(1, at(3), "stopped")
    assert run.state == S.CANCELLED


def test_cancelling_with_lost_worker_becomes_cancelled() -> None:
    run = in_state(S.CANCELLING)
    assert run.expire_lease(at(100)) and run.state == S.CANCELLED


@pytest.mark.parametrize("state", [S.SUCCEEDED, S.FAILED, S.CANCELLED])
def test_cancel_refused_when_finished(state: RunState) -> None:
    with pytest.raises(InvalidTransition):
        in_state(state).request_cancel(at(10))


def test_cancel_refused_while_registering() -> None:
    run = running()
    run.on_completed(1, at(1), at(100))
    with pytest.raises(InvalidTransition):
        run.request_cancel(at(2))


def test_completed_then_registered_succeeds_and_registration_timeout_fails() -> None:
    run = running()
    assert run.on_completed(1, at(1), at(100))
    assert run.state == S.RUNNING and run.phase == Phase.UPLOADING and run.registering
    with pytest.raises(LeaseConflict):
        run.heartbeat("w1", 1, at(2), LEASE)
    assert run.on_model_registered("trainedModels/m1", at(3))
    assert run.state == S.SUCCEEDED and run.trained_model == "trainedModels/m1"
    late = running()
    late.on_completed(1, at(1), at(100))
    assert late.expire_lease(at(101)) and late.state == S.FAILED
    assert late.failure is not None and late.failure.kind == FailureKind.TIMED_OUT


def test_registration_failed_fails_the_run() -> None:
    run = running()
    run.on_completed(1, at(1), at(100))
    assert run.on_registration_failed(Failure(FailureKind.ARTIFACT_MISMATCH, "sha differs"), at(2))
    assert run.state == S.FAILED and run.failure is not None and run.failure.message == "sha differs"


def test_events_of_stale_attempts_and_duplicates_are_ignored() -> None:
    run = running()
    run.release("w1", 1, at(1))
    run.claim("w2", 2, at(2), LEASE)
    assert not run.on_failed(1, Failure(FailureKind.OUT_OF_MEMORY, "old"), at(3))
    assert not run.on_cancelled(1, at(3))
    assert not run.on_completed(1, at(3), at(100))
    assert run.on_progress(2, 10, at(4), Phase.TRAINING, b"p10")
    assert not run.on_progress(2, 9, at(5), Phase.PREPARING_DATASET, b"p9")  # out of order
    assert not run.on_progress(2, 10, at(5), Phase.TRAINING, b"p10")  # duplicate
    assert (run.phase, run.progress, run.state) == (Phase.TRAINING, b"p10", S.RUNNING)
    assert run.on_started(2, at(6)) is False  # phase already past PREPARING: started never moves it back


def test_events_never_move_a_finished_run() -> None:
    run = in_state(S.SUCCEEDED)
    assert not run.on_failed(1, Failure(FailureKind.INTERNAL_ERROR, "late"), at(9))
    assert not run.on_cancelled(1, at(9))
    assert not run.on_progress(1, 99, at(9), Phase.TRAINING, b"x")
    assert not run.on_model_registered("trainedModels/other", at(9))
    assert run.state == S.SUCCEEDED and run.trained_model == "trainedModels/m1"


def test_delete_only_when_terminal() -> None:
    for state in S:
        if state == S.UNSPECIFIED:
            continue
        run = in_state(state)
        if state.terminal:
            run.ensure_deletable()
        else:
            with pytest.raises(InvalidTransition):
                run.ensure_deletable()


def test_every_transition_outside_the_table_is_illegal() -> None:
    for source in S:
        for target in S:
            run = new_run()
            run.state = source
            if (source, target) in ALLOWED_TRANSITIONS:
                run._transition(target, at(1), "ok")
                assert run.state == target and run.transitions[-1].from_state == source
            else:
                with pytest.raises(InvalidTransition):
                    run._transition(target, at(1), "bad")


def test_history_records_time_reason_and_attempt() -> None:
    run = running(max_attempts=3)
    run.expire_lease(at(40))
    run.claim("w2", 2, at(41), LEASE)
    run.on_failed(2, Failure(FailureKind.INVALID_DATASET, "bbox outside image"), at(50))
    assert [(t.to_state, t.attempt) for t in run.transitions] == [
        (S.PENDING, 1),
        (S.RUNNING, 1),
        (S.PENDING, 1),
        (S.RUNNING, 2),
        (S.FAILED, 2),
    ]
    assert run.transitions[-1].time == at(50) and "bbox outside image" in run.transitions[-1].reason


@pytest.mark.parametrize("state", [S.PENDING, S.RUNNING, S.CANCELLING])
def test_a_dead_lettered_message_fails_an_unfinished_run_with_its_reason(state: RunState) -> None:
    run = in_state(state)
    assert run.on_dead_lettered(1, "a message about this run failed 3 time(s): boom", at(5))
    assert run.state == S.FAILED and run.failure is not None
    assert run.failure.kind == FailureKind.INTERNAL_ERROR and "boom" in run.failure.message
    assert "boom" in run.transitions[-1].reason and run.end_time == at(5)


def test_a_dead_letter_about_another_attempt_or_a_finished_run_changes_nothing() -> None:
    run = running()
    run.expire_lease(at(40))  # attempt 2 is PENDING now
    assert not run.on_dead_lettered(1, "about attempt 1", at(41))
    assert run.state == S.PENDING
    assert run.on_dead_lettered(0, "attempt not known: the current one", at(42))  # 0 = unknown attempt
    assert run.state == S.FAILED
    for state in (S.SUCCEEDED, S.FAILED, S.CANCELLED):
        finished = in_state(state)
        assert not finished.on_dead_lettered(1, "too late", at(9)) and finished.state == state


def test_completed_records_an_early_stop_only_when_it_moves_to_registration() -> None:
    run = running()
    assert run.on_completed(1, at(1), at(100), stopped_epoch=2)
    assert run.stopped_epoch == 2
    assert not run.on_completed(1, at(2), at(100), stopped_epoch=5)  # a redelivery changes nothing
    assert run.stopped_epoch == 2
    plain = running()
    plain.on_completed(1, at(1), at(100))
    assert plain.stopped_epoch is None
