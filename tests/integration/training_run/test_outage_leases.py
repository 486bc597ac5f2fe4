"""A training_run outage longer than the lease: leases count heartbeats after the service came back."""

from __future__ import annotations

from datetime import datetime, timedelta

from common.proto.raven.v1 import training_run_pb2 as pb
from common.proto.raven.v1 import types_pb2
from services.training_run.bootstrap import utc_now
from tests.integration.training_run.conftest import AppFactory

LEASE = {"lease_seconds": 30.0, "heartbeat_seconds": 10.0}


class FakeClock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now


async def test_outage_longer_than_the_lease_neither_requeues_live_workers_nor_charges_an_attempt(
    make_harness: AppFactory,
) -> None:
    clock = FakeClock()
    before = await make_harness(settings=LEASE, clock=clock, start_reaper=False)
    one_attempt = types_pb2.Hyperparameters(epochs=2, max_attempts=1)
    alive = await before.create(hyperparameters=one_attempt)
    dead = await before.create(hyperparameters=one_attempt)
    await before.claim(alive.name, "w1", 1)
    await before.claim(dead.name, "w2", 1)
    await before.app.close()

    clock.now += timedelta(minutes=10)  # the outage: both stored leases ran out long ago
    after = await make_harness(settings=LEASE, clock=clock, start_reaper=False)
    assert await after.app.tracking.reap_expired_leases() == 0  # within the grace: nothing is judged yet
    clock.now += timedelta(seconds=5)
    beat = await after.stub.HeartbeatTrainingRun(
        pb.HeartbeatTrainingRunRequest(name=alive.name, worker_id="w1", attempt=1), metadata=after.worker
    )
    assert not beat.cancel_requested  # the live worker keeps its lease

    clock.now += timedelta(
        seconds=26
    )  # past the grace (one lease from start-up); the live worker's new lease still holds
    assert await after.app.tracking.reap_expired_leases() == 1
    kept, requeued = await after.get(alive.name), await after.get(dead.name)
    assert (kept.state, kept.attempt) == (types_pb2.RUNNING, 1)
    # the silent worker's run goes back to the queue; with max_attempts=1 a charged loss would FAIL it
    assert (requeued.state, requeued.attempt) == (types_pb2.PENDING, 2), requeued
    assert "not counted as a lost attempt" in requeued.transitions[-1].reason
