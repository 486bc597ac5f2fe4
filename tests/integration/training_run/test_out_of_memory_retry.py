"""Through the real training_run service: an attempt that failed for out of memory is requeued with half
the batch size, recorded on the attempt (GetTrainingRun) and sent in the next attempt's job."""

from __future__ import annotations

import pytest

from common.proto.raven.v1 import events_pb2, types_pb2
from tests.integration.training_run.conftest import Harness, pull_jobs

pytestmark = pytest.mark.timeout(60)
OOM_KILLED = types_pb2.Failure(
    kind=types_pb2.CHILD_CRASHED,
    message="the training process ran out of memory: the kernel's out-of-memory killer sent signal 9",
)


def run_id(name: str) -> str:
    return name.removeprefix("trainingRuns/")


async def fail(h: Harness, name: str, attempt: int, failure: types_pb2.Failure) -> None:
    await h.publish_event(run_id(name), attempt, failed=events_pb2.RunFailed(failure=failure))


async def test_an_out_of_memory_attempt_is_retried_with_half_the_batch(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    run = await h.create(
        hyperparameters=types_pb2.Hyperparameters(epochs=2, batch_size=4, learning_rate=0.004)
    )
    assert [(a.attempt, a.batch_size) for a in run.attempts] == [(1, 4)]
    await h.claim(run.name)
    await fail(h, run.name, 1, OOM_KILLED)

    retried = await h.wait_for(run.name, lambda r: r.attempt == 2)
    assert retried.state == types_pb2.PENDING
    first, second = retried.attempts
    assert (first.batch_size, second.batch_size) == (4, 2)
    assert second.learning_rate == pytest.approx(first.learning_rate / 2)
    assert retried.hyperparameters.batch_size == 4  # what the user asked for stays as it was
    jobs = await pull_jobs(h.nc, h.names, expect=2)
    assert [(job.attempt, job.hyperparameters.batch_size) for job in jobs] == [(1, 4), (2, 2)]


async def test_out_of_memory_at_batch_size_one_fails_saying_it_cannot_go_smaller(
    sqlite_harness: Harness,
) -> None:
    h = sqlite_harness
    run = await h.create(hyperparameters=types_pb2.Hyperparameters(epochs=2, batch_size=1))
    await h.claim(run.name)
    cuda = types_pb2.Failure(
        kind=types_pb2.OUT_OF_MEMORY, message="training ran out of cuda memory (batch_size 1)"
    )
    await fail(h, run.name, 1, cuda)

    failed = await h.wait_for(run.name, lambda r: r.state == types_pb2.FAILED)
    assert failed.failure.kind == types_pb2.OUT_OF_MEMORY and failed.attempt == 1
    assert "batch_size is already 1 and can't go smaller" in failed.failure.message
