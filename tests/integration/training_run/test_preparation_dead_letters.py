"""A dataset preparation job the workers give up on (dead-lettered) marks its version INVALID, so the runs
waiting for it (a plain dataset reference's implicit version) end FAILED instead of PENDING forever.

Real nats-server, real training_run (its dead-letter consumer), SQLite and PostgreSQL; the trainer worker's
real preparation job queue, whose handler here never settles the job (a worker that dies on it every time)
or fails it on every delivery."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest

from common.nats_streams import RetryPolicy
from common.proto.raven.v1 import datasets_pb2 as pb
from common.proto.raven.v1 import types_pb2
from services.trainer_worker.adapters.jobs import DATASET_JOBS, JobMessage, JobQueue
from tests.integration.training_run.conftest import AppFactory, Harness, awaiting_version
from tests.integration.training_run.datasets_support import Datasets

pytestmark = pytest.mark.timeout(90)
MAX_DELIVER = 3
FAST = {
    "consumer_max_deliver": MAX_DELIVER,
    "worker_max_deliver": MAX_DELIVER,
    "retry_backoff_seconds": [0.05],
}


async def drain(h: Harness, handle: Callable[[JobMessage], Awaitable[None]], ack_wait: float) -> list[int]:
    """Takes preparation jobs until none comes for 1.5 s; the delivery count of each."""
    policy = RetryPolicy(MAX_DELIVER, (0.05,))
    queue = JobQueue(h.nc.jetstream(), h.names, ack_wait=ack_wait, policy=policy, jobs=DATASET_JOBS)
    await queue.start()
    seen: list[int] = []
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < 1.5:
            msg = await queue.fetch_one(0.3)
            if msg is not None:
                idle_since = time.monotonic()
                seen.append(msg.num_delivered)
                await handle(msg)
    finally:
        await queue.close()
    return seen


async def waiting_run(make_harness: AppFactory, database_url: str) -> Harness:
    h = await make_harness(database_url, settings=FAST)
    h.prepares = False  # no real intake: the version waits for the queue these tests drain
    return h


async def test_a_preparation_job_no_worker_answers_fails_the_version_and_its_runs(
    make_harness: AppFactory, database_url: str
) -> None:
    h = await waiting_run(make_harness, database_url)
    run = await h.create()
    assert awaiting_version(run)

    async def dies(msg: JobMessage) -> None:
        pass  # the worker process dies before it can settle the message

    assert await drain(h, dies, ack_wait=0.3) == list(range(1, MAX_DELIVER + 1))
    failed = await h.wait_for(run.name, lambda r: r.state == types_pb2.FAILED, timeout=20)
    message = failed.failure.message
    assert failed.failure.kind == types_pb2.INVALID_DATASET
    assert f"dataset version {run.dataset_version} is INVALID" in message
    assert f"preparation failed {MAX_DELIVER} time(s)" in message and "never acknowledged" in message
    version = await Datasets.of(h).get_version(run.dataset_version)
    assert version.state == pb.DATASET_VERSION_STATE_INVALID
    assert version.failure.message.startswith(f"preparation failed {MAX_DELIVER} time(s)")
    assert (await h.nc.jetstream().stream_info(h.names.jobs)).state.messages == 0  # left the work queue

    # The same files again: a version that failed for a reason other than its content is not reused.
    again = await h.create()
    assert awaiting_version(again) and again.dataset_version != run.dataset_version


async def test_a_preparation_job_failing_on_every_delivery_fails_its_waiting_run(
    make_harness: AppFactory,
) -> None:
    h = await waiting_run(make_harness, "")
    run = await h.create()

    async def fails(msg: JobMessage) -> None:
        await msg.fail("dataset preparation failed: OSError")

    assert await drain(h, fails, ack_wait=30.0) == list(range(1, MAX_DELIVER + 1))
    failed = await h.wait_for(run.name, lambda r: r.state == types_pb2.FAILED, timeout=20)
    message = failed.failure.message
    assert f"preparation failed {MAX_DELIVER} time(s) and was given up (handler_failed)" in message
    assert "dataset preparation failed: OSError" in message
