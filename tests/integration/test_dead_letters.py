"""Poison messages on a real nats-server: bounded deliveries, the dead-letter record, advisory, metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import nats.errors
import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client import REGISTRY

from common.dead_letters import DeadLetterReason, DeadLetters, describe, record_from_advisory
from common.nats_streams import (
    MAX_DELIVERIES_ADVISORY,
    WORKER_CONSUMER,
    RetryPolicy,
    StreamNames,
    connect,
    ensure_events_consumer,
    ensure_streams,
    ensure_worker_consumer,
    job_msg_id,
)
from common.proto.raven.v1 import dead_letters_pb2, events_pb2
from tests.reliability import results

pytestmark = pytest.mark.timeout(60)
FAST = RetryPolicy(max_deliver=3, backoff=(0.05,))


@pytest.fixture
async def js(nats_url: str, unique: str) -> AsyncIterator[tuple[JetStreamContext, StreamNames]]:
    names = StreamNames(jobs=f"DLJ_{unique}", events=f"DLE_{unique}", prefix=f"dl{unique}")
    nc = await connect(nats_url, "test-dead-letters")
    context = nc.jetstream()
    await ensure_streams(context, names)
    yield context, names
    for stream in (names.jobs, names.events, names.dead_letters_stream):
        await context.delete_stream(stream)
    await nc.close()


def dead_lettered(consumer: str, reason: DeadLetterReason) -> float:
    value = REGISTRY.get_sample_value(
        "raven_dead_lettered_messages_total", {"consumer": consumer, "reason": reason.value}
    )
    return value or 0.0


async def stored(js: JetStreamContext, names: StreamNames, count: int) -> list[Any]:
    """The dead-letter stream's first ``count`` messages (waits up to 10 s for them)."""
    deadline = time.monotonic() + 10
    while (await js.stream_info(names.dead_letters_stream)).state.messages < count:
        assert time.monotonic() < deadline, "dead-letter stream never filled"
        await asyncio.sleep(0.05)
    return [await js.get_msg(names.dead_letters_stream, seq) for seq in range(1, count + 1)]


async def test_existing_consumers_are_updated_in_place_to_bounded_deliveries(js: Any) -> None:
    context, names = js
    # As provisioned before: unbounded deliveries, no backoff.
    legacy = {"ack_policy": AckPolicy.EXPLICIT, "max_deliver": -1}
    await context.add_consumer(
        names.jobs, ConsumerConfig(durable_name=WORKER_CONSUMER, filter_subject=names.jobs_subject, **legacy)
    )
    await context.add_consumer(
        names.events,
        ConsumerConfig(durable_name="tracker", filter_subject=names.events_subject_pattern, **legacy),
    )
    policy = RetryPolicy(max_deliver=7, backoff=(1.0, 5.0))
    await ensure_worker_consumer(context, names, ack_wait=120.0, policy=policy)
    await ensure_events_consumer(context, "tracker", names, policy)
    worker = (await context.consumer_info(names.jobs, WORKER_CONSUMER)).config
    tracker = (await context.consumer_info(names.events, "tracker")).config
    assert (worker.max_deliver, worker.ack_wait) == (7, 120.0)
    assert (tracker.max_deliver, tracker.ack_wait) == (7, 30.0)
    # The backoff is the settler's nak delays (see RetryPolicy), not JetStream's own option.
    assert not worker.backoff and not tracker.backoff
    assert [policy.nak_delay(n) for n in range(1, 5)] == [1.0, 5.0, 5.0, 5.0]


async def test_a_message_that_always_fails_is_delivered_at_most_n_times_then_dead_lettered(js: Any) -> None:
    context, names = js
    await ensure_events_consumer(context, "poisoned", names, FAST)
    settler = DeadLetters(context, names, "poisoned", FAST)
    before = dead_lettered("poisoned", DeadLetterReason.HANDLER_FAILED)
    event = events_pb2.RunEvent(run_id="run-poison", attempt=2)
    event.progress.progress.iter = 5
    await context.publish(names.run_events_subject("run-poison"), event.SerializeToString())
    sub = await context.pull_subscribe_bind("poisoned", names.events)
    deliveries = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 1.5:  # until nothing more comes
        try:
            messages = await sub.fetch(1, timeout=0.3)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        for msg in messages:
            idle_since = time.monotonic()
            deliveries.append(msg.metadata.num_delivered)
            await settler.failed(msg, "ValueError('the handler fails every time')")
    results.record(
        "poison_messages", {"case": "handler always fails", "deliveries": len(deliveries), "max_deliver": 3}
    )
    assert deliveries == [1, 2, 3]
    (raw,) = await stored(context, names, 1)
    assert raw.subject == names.dead_letter_subject("poisoned")
    record = dead_letters_pb2.DeadLetter.FromString(raw.data)
    assert (record.consumer, record.stream, record.subject) == (
        "poisoned",
        names.events,
        names.run_events_subject("run-poison"),
    )
    assert record.payload == event.SerializeToString() and record.deliveries == 3
    assert record.reason == "handler_failed" and "fails every time" in record.error
    assert (record.run_id, record.attempt) == ("run-poison", 2)
    assert "failed 3 time(s)" in describe(record) and "fails every time" in describe(record)
    assert dead_lettered("poisoned", DeadLetterReason.HANDLER_FAILED) == before + 1


async def test_an_undecodable_job_is_dead_lettered_on_its_first_delivery(js: Any) -> None:
    context, names = js
    await ensure_worker_consumer(context, names, ack_wait=30.0, policy=FAST)
    settler = DeadLetters(context, names, WORKER_CONSUMER, FAST)
    await context.publish(
        names.jobs_subject, b"\xff\xfe not a job", headers={"Nats-Msg-Id": job_msg_id("r9", 4)}
    )
    sub = await context.pull_subscribe_bind(WORKER_CONSUMER, names.jobs)
    (msg,) = await sub.fetch(1, timeout=5)
    await settler.unreadable(msg, "job payload is not a TrainingJob")
    (raw,) = await stored(context, names, 1)
    record = dead_letters_pb2.DeadLetter.FromString(raw.data)
    assert (record.reason, record.deliveries, record.run_id, record.attempt) == ("undecodable", 1, "r9", 4)
    assert record.headers["Nats-Msg-Id"] == "r9:4"
    assert (await context.stream_info(names.jobs)).state.messages == 0  # terminated: off the work queue


async def test_deliveries_that_are_never_answered_end_in_an_advisory_and_a_record(js: Any) -> None:
    """A consumer that crashes on a message every time never acks, naks or terms it: JetStream stops at
    max_deliver and its advisory lands on the dead-letter stream."""
    context, names = js
    await ensure_worker_consumer(
        context, names, ack_wait=0.3, policy=RetryPolicy(max_deliver=2, backoff=(0.05,))
    )
    job = events_pb2.TrainingJob(run_id="r-crash", attempt=1)
    await context.publish(names.jobs_subject, job.SerializeToString(), headers={"Nats-Msg-Id": "r-crash:1"})
    sub = await context.pull_subscribe_bind(WORKER_CONSUMER, names.jobs)
    deliveries = []
    deadline = time.monotonic() + 10
    while (await context.stream_info(names.dead_letters_stream)).state.messages == 0:
        assert time.monotonic() < deadline, f"no advisory after deliveries {deliveries}"
        try:
            deliveries += [m.metadata.num_delivered for m in await sub.fetch(1, timeout=0.3)]
        except (TimeoutError, nats.errors.TimeoutError):
            pass
    results.record(
        "poison_messages", {"case": "never answered", "deliveries": len(deliveries), "max_deliver": 2}
    )
    assert deliveries == [1, 2]
    (advisory,) = await stored(context, names, 1)
    assert advisory.subject == f"{MAX_DELIVERIES_ADVISORY}.{names.jobs}.{WORKER_CONSUMER}"
    record = await record_from_advisory(context, names, advisory.data, datetime.now(UTC))
    assert record is not None
    assert (record.reason, record.deliveries, record.run_id, record.consumer) == (
        "no_ack",
        2,
        "r-crash",
        WORKER_CONSUMER,
    )
    assert record.payload == job.SerializeToString()
