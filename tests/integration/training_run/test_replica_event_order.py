"""Several training_run replicas share the run-events durable consumer; its events must still be applied in
stream order (``completed`` before ``model_registered``), each once, also across a hand-over.

Each replica here is what bootstrap wires: its own NATS connection, an ``EventConsumer`` on the shared
durable, started through ``bootstrap.ordered_consumers`` (the lease). Applying an event is recorded after a
short wait (a database commit). Started directly, without the lease, the two replicas each got a share of the
messages and applied them concurrently: the per-run order was broken (checked while writing this test).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from common.dead_letters import DeadLetters
from common.leadership import Leadership
from common.nats_streams import RetryPolicy, StreamNames, connect, ensure_streams
from common.proto.raven.v1 import events_pb2
from common.settings import Settings
from services.training_run.bootstrap import ordered_consumers
from services.training_run.entrypoints.event_consumer import DURABLE, EventConsumer
from services.training_run.service_layer.commands import ReportedEvent

pytestmark = pytest.mark.timeout(90)
RUNS, EVENTS_PER_RUN, APPLY_SECONDS = 8, 25, 0.004


class Replica:
    def __init__(self, index: int, applied: list[tuple[int, str, int]]) -> None:
        self.index = index
        self.applied = applied  # (replica, run id, stream sequence), in the order applied, shared

    async def start(self, nats_url: str, names: StreamNames) -> Replica:
        self.nc = await connect(nats_url, f"test-replica-{self.index}")
        js = self.nc.jetstream()
        consumer = EventConsumer(js, names, self.apply, DeadLetters(js, names, DURABLE, RetryPolicy()))
        settings = Settings(ordered_consumer_lease_seconds=1.5, log_json=False)
        self.lease: Leadership = ordered_consumers(js, names, settings, 50051 + self.index, consumer)
        await self.lease.start()
        return self

    async def apply(self, event: ReportedEvent) -> bool:
        await asyncio.sleep(APPLY_SECONDS)  # the transaction; a cancel here leaves nothing applied
        self.applied.append((self.index, event.run_id, event.seq))
        return True

    async def stop(self) -> None:
        await self.lease.stop()
        await self.nc.close()


async def publish_events(js: object, names: StreamNames, runs: list[str]) -> list[tuple[str, int]]:
    """Every run's events, interleaved across runs; returns (run id, stream sequence) as stored."""
    published = []
    for step in range(EVENTS_PER_RUN):
        for run_id in runs:
            event = events_pb2.RunEvent(run_id=run_id, attempt=1)
            event.progress.progress.epoch = step
            ack = await js.publish(names.run_events_subject(run_id), event.SerializeToString())  # type: ignore[attr-defined]
            published.append((run_id, ack.seq))
    return published


async def wait_applied(applied: list[tuple[int, str, int]], count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while len({(run, seq) for _, run, seq in applied}) < count and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def check_order(applied: list[tuple[int, str, int]], published: list[tuple[str, int]]) -> None:
    assert {(run, seq) for _, run, seq in applied} == set(published)  # none lost
    # once each, but for at most the one being committed at the hand-over (the domain drops a repeated seq)
    assert len(applied) - len(published) <= 1
    for run_id in {run for run, _ in published}:
        seqs = [seq for _, run, seq in applied if run == run_id]
        assert seqs == sorted(seqs), f"run {run_id}: events applied out of stream order: {seqs}"


async def test_two_replicas_apply_run_events_in_stream_order_also_across_a_hand_over(
    nats_url: str, unique: str
) -> None:
    names = StreamNames(jobs=f"ROJ_{unique}", events=f"ROE_{unique}", prefix=f"ro{unique}")
    publisher = await connect(nats_url, "test-publisher")
    js = publisher.jetstream()
    await ensure_streams(js, names)
    applied: list[tuple[int, str, int]] = []
    group = [await Replica(i, applied).start(nats_url, names) for i in range(2)]
    try:
        runs = [f"run{unique}{i}" for i in range(RUNS)]
        published = await publish_events(js, names, runs)
        # Half of them applied, then the active replica stops (a rolling update) in the middle of a batch.
        await wait_applied(applied, len(published) // 2, 30)
        active = [r for r in group if r.lease.active]
        assert len(active) == 1
        assert {replica for replica, _, _ in applied} == {active[0].index}  # one replica applied them all
        await active[0].stop()
        group.remove(active[0])
        await wait_applied(applied, len(published), 30)
        assert group[0].lease.active
        check_order(applied, published)
        assert {replica for replica, _, _ in applied} == {0, 1}  # the other one took over
    finally:
        for replica in group:
            await replica.stop()
        await publisher.close()
