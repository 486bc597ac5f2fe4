"""An attempt that ran out of memory is retried with half the batch (learning rate scaled with it); at
batch size 1 the run fails saying it can't go smaller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.training_run.domain.attempts import AttemptRecord
from services.training_run.domain.model import Failure, FailureKind, RunSpec, RunState, TrainingRun

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)
CUDA_OOM = Failure(FailureKind.OUT_OF_MEMORY, "training ran out of cuda memory (batch_size 8)")
OOM_KILLED = Failure(
    FailureKind.CHILD_CRASHED,
    "the training process ran out of memory: the kernel's out-of-memory killer sent signal 9 (SIGKILL)",
)
PLAIN_KILL = Failure(FailureKind.CHILD_CRASHED, "the training process was killed by signal 15 (SIGTERM)")


def running(batch_size: int, max_attempts: int = 5, learning_rate: float = 0.004) -> TrainingRun:
    spec = RunSpec(
        dataset="d",
        model_template="t",
        class_names=("a",),
        hyperparameters={"batch_size": batch_size, "learning_rate": learning_rate, "epochs": 2},
        max_attempts=max_attempts,
    )
    run = TrainingRun.create(id="r1", owner="alice", display_name="run", spec=spec, now=T0)
    run.claim("w1", 1, T0, LEASE)
    return run


@pytest.mark.parametrize(
    ("batch", "halved"), [(8, 4), (5, 2), (2, 1)], ids=["even", "odd floors", "down to one"]
)
def test_the_next_attempt_halves_the_batch_and_scales_the_learning_rate(batch: int, halved: int) -> None:
    record = AttemptRecord(1, batch, 0.004)
    assert record.next(CUDA_OOM) == AttemptRecord(2, halved, pytest.approx(0.004 * halved / batch))


def test_an_attempt_that_did_not_run_out_of_memory_keeps_its_batch() -> None:
    assert AttemptRecord(1, 8, 0.004).next(PLAIN_KILL) == AttemptRecord(2, 8, 0.004)
    assert AttemptRecord(3, 8, 0.004).next() == AttemptRecord(4, 8, 0.004)


@pytest.mark.parametrize("failure", [CUDA_OOM, OOM_KILLED], ids=["cuda", "oom killer"])
def test_a_run_out_of_memory_is_requeued_with_half_the_batch_recorded_on_the_attempt(
    failure: Failure,
) -> None:
    run = running(batch_size=8)
    assert run.on_failed(1, failure, T0 + timedelta(seconds=1))
    assert run.state == RunState.PENDING and run.attempt == 2 and run.failure is None
    assert [(a.attempt, a.batch_size) for a in run.attempts] == [(1, 8), (2, 4)]
    assert run.attempts[1].learning_rate == pytest.approx(0.002)
    assert "retried with batch_size 4" in run.transitions[-1].reason


def test_each_further_out_of_memory_halves_again_until_one_then_fails_saying_it_cannot_go_smaller() -> None:
    run = running(batch_size=2, max_attempts=5)
    assert run.on_failed(1, CUDA_OOM, T0 + timedelta(seconds=1))
    run.claim("w1", 2, T0 + timedelta(seconds=2), LEASE)
    assert run.current_attempt == AttemptRecord(2, 1, pytest.approx(0.002))

    assert run.on_failed(2, OOM_KILLED, T0 + timedelta(seconds=3))
    assert run.state == RunState.FAILED and run.failure is not None
    assert run.failure.message.startswith(OOM_KILLED.message)
    assert "batch_size is already 1 and can't go smaller" in run.failure.message
    assert [a.batch_size for a in run.attempts] == [2, 1]


def test_out_of_memory_retries_count_toward_max_attempts() -> None:
    run = running(batch_size=16, max_attempts=2)
    assert run.on_failed(1, CUDA_OOM, T0 + timedelta(seconds=1))
    run.claim("w1", 2, T0 + timedelta(seconds=2), LEASE)
    assert run.on_failed(2, CUDA_OOM, T0 + timedelta(seconds=3))
    assert run.state == RunState.FAILED and run.failure == CUDA_OOM


def test_a_requeue_for_another_reason_keeps_the_attempts_batch() -> None:
    run = running(batch_size=8)
    run.on_failed(1, CUDA_OOM, T0 + timedelta(seconds=1))
    run.claim("w1", 2, T0 + timedelta(seconds=2), LEASE)
    assert run.expire_lease(T0 + timedelta(minutes=5))  # worker lost: same batch as the attempt it retries
    assert [(a.attempt, a.batch_size) for a in run.attempts] == [(1, 8), (2, 4), (3, 4)]


def test_a_bare_sigkill_is_retried_with_the_same_batch() -> None:
    run = running(batch_size=8)
    unknown = Failure(
        FailureKind.CHILD_CRASHED,
        "the training process was killed by signal 9 (SIGKILL), e.g. by the out-of-memory killer",
    )
    assert run.on_failed(1, unknown, T0 + timedelta(seconds=1))
    assert [a.batch_size for a in run.attempts] == [8, 8]
