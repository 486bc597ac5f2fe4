"""Leases after a training_run outage: judged on heartbeats received after start-up, not on wall clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.training_run.domain.model import LeaseConflict, RunState, StartupGrace
from tests.unit.training_run.test_domain import LEASE, at, running

# training_run was down from t=5 to t=600 (the lease ran out at t=30); the grace lasts one lease after that.
GRACE = StartupGrace(started=at(600), until=at(600) + LEASE)


def test_a_lease_that_ran_out_during_the_outage_is_not_reaped_within_the_grace() -> None:
    run = running()
    assert run.expire_lease(at(601), GRACE) is False
    assert run.expire_lease(at(629), GRACE) is False
    assert run.state == RunState.RUNNING


def test_a_live_worker_heartbeats_again_after_the_outage_and_keeps_its_lease() -> None:
    run = running()
    assert run.heartbeat("w1", 1, at(610), LEASE, grace=GRACE) is False
    assert run.lease_expire_time == at(610) + LEASE
    assert run.expire_lease(at(635), GRACE) is False  # past the grace, but the new lease holds
    assert (run.state, run.attempt, run.lost_attempts) == (RunState.RUNNING, 1, 0)


def test_without_the_grace_the_outage_kills_the_lease() -> None:
    with pytest.raises(LeaseConflict):
        running().heartbeat("w1", 1, at(610), LEASE)


def test_a_lease_reaped_only_because_of_the_outage_is_not_charged_as_a_lost_attempt() -> None:
    run = running(max_attempts=1)
    assert run.expire_lease(at(631), GRACE) is True  # no heartbeat in the whole grace: requeued...
    assert (run.state, run.attempt, run.lost_attempts, run.released_attempts) == (RunState.PENDING, 2, 0, 1)
    assert "while training_run was down" in run.transitions[-1].reason  # ...not FAILED with max_attempts=1


def test_a_lease_that_runs_out_after_start_up_is_charged_as_usual() -> None:
    run = running(max_attempts=2)
    run.heartbeat("w1", 1, at(610), LEASE, grace=GRACE)  # alive after the outage, then silent
    assert run.expire_lease(at(610) + LEASE + timedelta(seconds=1), GRACE) is True
    assert (run.state, run.lost_attempts, run.released_attempts) == (RunState.PENDING, 1, 0)
