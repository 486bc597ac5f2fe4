"""Poison messages end their run FAILED: a job no worker can claim, a job that can't be read, an event whose
handler fails every time. Real nats-server, real training_run (its dead-letter consumer), real database."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from common.dead_letters import DeadLetters
from common.nats_streams import RetryPolicy, job_msg_id
from common.proto.raven.v1 import events_pb2, training_run_pb2, types_pb2
from services.trainer_worker.adapters.jobs import JobMessage, JobQueue
from services.training_run.domain.model import RunSpec, TrainingRun
from services.training_run.entrypoints import event_consumer
from services.training_run.entrypoints.event_consumer import EventConsumer
from services.training_run.service_layer.commands import ReportedEvent
from tests.integration.training_run.conftest import AppFactory, Harness
from tests.reliability.results import record

pytestmark = pytest.mark.timeout(90)
MAX_DELIVER = 3
FAST = {
    "consumer_max_deliver": MAX_DELIVER,
    "worker_max_deliver": MAX_DELIVER,
    "retry_backoff_seconds": [0.05],
}


def run_id(name: str) -> str:
    return name.split("/", 1)[1]


async def queued_run(h: Harness, rid: str = "") -> training_run_pb2.TrainingRun:
    """A PENDING run with its job on the queue, stored as CreateTrainingRun stores a validated one."""
    spec = RunSpec(
        dataset=h.dataset,
        model_template="rtmdet_tiny",
        class_names=("bottle",),
        hyperparameters={},
        max_attempts=3,
    )
    run = TrainingRun.create(
        id=rid or uuid.uuid4().hex, owner="alice", display_name="poison", spec=spec, now=datetime.now(UTC)
    )
    async with h.app.service._uow() as uow:
        await uow.runs.add(run)
        await uow.commit()
    return await h.get(f"trainingRuns/{run.id}")


def counter(consumer: str, reason: str) -> float:
    labels = {"consumer": consumer, "reason": reason}
    return REGISTRY.get_sample_value("raven_dead_lettered_messages_total", labels) or 0.0


def poisoned(case: str, deliveries: int, run: training_run_pb2.TrainingRun) -> None:
    """What docs/reliability.md reports for each poison message (see tests/reliability/summarize.py)."""
    state = types_pb2.RunState.Name(run.state)
    record(
        "poison_runs", {"case": case, "deliveries": deliveries, "max_deliver": MAX_DELIVER, "state": state}
    )


async def drain_jobs(queue: JobQueue, handle: Any, quiet: float = 1.5) -> list[tuple[str, int]]:
    """Fetches jobs until none comes for ``quiet`` seconds; returns (run id or '?', delivery) per delivery."""
    seen: list[tuple[str, int]] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < quiet:
        msg = await queue.fetch_one(0.3)
        if msg is None:
            continue
        idle_since = time.monotonic()
        try:
            seen.append((msg.parse().run_id, msg.num_delivered))
        except ValueError:
            seen.append(("?", msg.num_delivered))
        await handle(msg)
    return seen


async def test_a_job_no_worker_can_claim_is_delivered_n_times_then_its_run_fails(
    make_harness: AppFactory,
) -> None:
    h = await make_harness(settings=FAST)
    run = await queued_run(h)
    queue = JobQueue(h.nc.jetstream(), h.names, ack_wait=30.0, policy=RetryPolicy(MAX_DELIVER, (0.05,)))
    await queue.start()
    before = counter("trainer-workers", "handler_failed")

    async def claim_fails(msg: JobMessage) -> None:  # what the worker does when the claim keeps failing
        await msg.fail("claiming the run failed: ClaimTrainingRun: INTERNAL: boom")

    try:
        deliveries = await drain_jobs(queue, claim_fails)
    finally:
        await queue.close()
    assert deliveries == [(run_id(run.name), n) for n in range(1, MAX_DELIVER + 1)]
    failed = await h.wait_for(run.name, lambda r: r.state == types_pb2.FAILED)
    poisoned("job whose claim always fails", len(deliveries), failed)
    assert "dead-lettered" in failed.failure.message and "failed 3 time(s)" in failed.failure.message
    assert "ClaimTrainingRun: INTERNAL: boom" in failed.failure.message
    assert counter("trainer-workers", "handler_failed") == before + 1


async def test_an_unreadable_job_fails_its_run_at_once(make_harness: AppFactory) -> None:
    h = await make_harness(settings=FAST)
    rid = uuid.uuid4().hex
    js = h.nc.jetstream()
    # The job of attempt 1 arrives corrupt (the relay's own copy is then dropped as a duplicate id), and one
    # of an attempt the run never reached, which must change nothing.
    for attempt in (1, 7):
        await js.publish(
            h.names.jobs_subject, b"\x08\xff\xff", headers={"Nats-Msg-Id": job_msg_id(rid, attempt)}
        )
    run = await queued_run(h, rid)
    queue = JobQueue(js, h.names, ack_wait=30.0, policy=RetryPolicy(MAX_DELIVER, (0.05,)))
    await queue.start()
    before = counter("trainer-workers", "undecodable")

    async def worker_intake(msg: JobMessage) -> None:
        try:
            msg.parse()
        except ValueError as exc:
            await msg.reject(str(exc))  # as JobRunner.run does
            return
        raise AssertionError("only corrupt jobs are on the queue")

    try:
        assert await drain_jobs(queue, worker_intake) == [("?", 1), ("?", 1)]
    finally:
        await queue.close()
    failed = await h.wait_for(run.name, lambda r: r.state == types_pb2.FAILED)
    poisoned("unreadable job", 1, failed)
    assert "(undecodable)" in failed.failure.message and "TrainingJob" in failed.failure.message
    assert failed.attempt == 1
    assert counter("trainer-workers", "undecodable") == before + 2


async def test_an_event_whose_handler_always_fails_ends_the_run_failed(make_harness: AppFactory) -> None:
    h = await make_harness(settings=FAST, start_consumer=False)
    await h.app.dead_letters.start()
    run = await queued_run(h)
    rid = run_id(run.name)
    await h.app.tracking.claim(rid, "w1", 1)  # a worker holds attempt 1
    calls: list[int] = []

    async def apply(event: ReportedEvent) -> bool:
        if event.run_id == rid and event.kind == "progress":
            calls.append(event.seq)
            raise RuntimeError("the tracker fails on this event every time")
        return await h.app.tracking.apply_event(event)

    js = h.nc.jetstream()
    policy = RetryPolicy(MAX_DELIVER, (0.05,))
    tracker = EventConsumer(js, h.names, apply, DeadLetters(js, h.names, event_consumer.DURABLE, policy))
    before = counter(event_consumer.DURABLE, "handler_failed")
    await tracker.start()
    try:
        seq = await h.publish_event(
            rid, 1, progress=events_pb2.ProgressReported(progress=types_pb2.ProgressSnapshot(iter=3))
        )
        failed = await h.wait_for(run.name, lambda r: r.state == types_pb2.FAILED)
    finally:
        await tracker.stop()
    poisoned("event whose handler always raises", len(calls), failed)
    assert calls == [seq] * MAX_DELIVER
    assert "the tracker fails on this event every time" in failed.failure.message
    assert failed.failure.kind == types_pb2.INTERNAL_ERROR
    assert counter(event_consumer.DURABLE, "handler_failed") == before + 1


async def test_a_job_whose_worker_never_answers_ends_in_the_advisory_and_its_run_fails(
    make_harness: AppFactory,
) -> None:
    """A worker that dies on the job every time never acks, naks or terms it: after max_deliver JetStream's
    advisory is turned into a record, the job leaves the work queue and the run ends FAILED."""
    h = await make_harness(settings=FAST)
    run = await queued_run(h)
    js = h.nc.jetstream()
    queue = JobQueue(js, h.names, ack_wait=0.3, policy=RetryPolicy(MAX_DELIVER, (0.05,)))
    await queue.start()
    before = counter("trainer-workers", "no_ack")

    async def crash(msg: JobMessage) -> None:
        pass  # the worker process dies before it can settle the message

    try:
        deliveries = await drain_jobs(queue, crash, quiet=2.0)
        failed = await h.wait_for(run.name, lambda r: r.state == types_pb2.FAILED)
    finally:
        await queue.close()
    poisoned("job whose worker never answers", len(deliveries), failed)
    assert deliveries == [(run_id(run.name), n) for n in range(1, MAX_DELIVER + 1)]
    assert "(no_ack)" in failed.failure.message and "never acknowledged" in failed.failure.message
    assert (await js.stream_info(h.names.jobs)).state.messages == 0  # removed from the work queue
    assert counter("trainer-workers", "no_ack") == before + 1
