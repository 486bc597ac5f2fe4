"""Pure job rules: stop precedence, settlement, ids and keys, slots, progress throttle, log batches, lease."""

from __future__ import annotations

import pytest

from services.trainer_worker.bootstrap import slot_devices
from services.trainer_worker.domain.job import (
    LeaseClock,
    LogBatch,
    ProgressThrottle,
    Settlement,
    StopReason,
    StopSignal,
    checkpoint_key,
    settlement_after,
    terminal_msg_id,
    worker_slots,
)


def test_first_stop_reason_wins() -> None:
    stop = StopSignal()
    assert not stop.requested and stop.may_publish_terminal
    assert stop.request(StopReason.CANCELLED, "user")
    assert not stop.request(StopReason.SHUTDOWN, "sigterm")
    assert stop.reason is StopReason.CANCELLED and stop.detail == "user"
    assert stop.may_publish_terminal


def test_lost_lease_overrides_any_other_reason_and_forbids_publishing() -> None:
    for first in (StopReason.CANCELLED, StopReason.SHUTDOWN):
        stop = StopSignal()
        stop.request(first)
        assert stop.request(StopReason.LEASE_LOST, "aborted")
        assert stop.reason is StopReason.LEASE_LOST and not stop.may_publish_terminal
        assert not stop.request(StopReason.CANCELLED)
        assert not stop.request(StopReason.LEASE_LOST, "again")
        assert stop.detail == "aborted"


def test_ack_only_after_a_terminal_event() -> None:
    assert settlement_after(True) is Settlement.ACK
    assert settlement_after(False) is Settlement.NAK


def test_terminal_msg_id_is_per_run_attempt_and_kind() -> None:
    assert terminal_msg_id("r1", 2, "completed") == "r1:2:completed"
    assert terminal_msg_id("r1", 2, "cancelled") != terminal_msg_id("r1", 3, "cancelled")
    with pytest.raises(ValueError, match="not a terminal"):
        terminal_msg_id("r1", 1, "progress")


def test_checkpoint_keys_are_fenced_per_attempt() -> None:
    assert checkpoint_key("r1", 1, "epoch_3.pth") == "runs/r1/checkpoints/attempt-1/epoch_3.pth"
    assert checkpoint_key("r1", 1, "epoch_3.pth") != checkpoint_key("r1", 2, "epoch_3.pth")


@pytest.mark.parametrize(("configured", "gpus", "expected"), [(0, 0, 1), (0, 4, 4), (2, 0, 2), (3, 8, 3)])
def test_worker_slots(configured: int, gpus: int, expected: int) -> None:
    assert worker_slots(configured, gpus) == expected


@pytest.mark.parametrize(
    ("device", "slots", "gpus", "expected"),
    [
        ("auto", 0, 0, ["cpu"]),
        ("auto", 0, 2, ["cuda:0", "cuda:1"]),
        ("cpu", 0, 2, ["cpu"]),
        ("cpu", 2, 0, ["cpu", "cpu"]),
        ("cuda", 3, 2, ["cuda:0", "cuda:1", "cuda:0"]),
        ("cuda:1", 0, 2, ["cuda:1"]),
    ],
)
def test_one_device_per_slot(device: str, slots: int, gpus: int, expected: list[str]) -> None:
    assert slot_devices(device, slots, gpus) == expected


def test_progress_throttle_by_iterations_time_and_force() -> None:
    throttle = ProgressThrottle(every_iters=10, every_seconds=5.0)
    assert throttle.should_publish(1, now=0.0)  # the first report always goes out
    assert not throttle.should_publish(2, now=0.1)
    assert not throttle.should_publish(10, now=0.2)
    assert throttle.should_publish(11, now=0.3)  # 10 iterations later
    assert not throttle.should_publish(12, now=5.2)
    assert throttle.should_publish(13, now=5.4)  # 5 seconds later
    assert throttle.should_publish(13, now=5.5, force=True)  # validation, phase change
    assert not throttle.should_publish(14, now=5.6)


def test_log_batch_flushes_by_size_age_and_force() -> None:
    batch = LogBatch(max_lines=3, max_seconds=1.0, max_line_chars=10)
    batch.add("a\n", now=0.0)
    batch.add("b", now=0.1)
    assert batch.take(now=0.5) == []
    assert batch.take(now=1.1) == ["a", "b"]  # old enough
    for line in "cdefg":
        batch.add(line, now=2.0)
    assert batch.take(now=2.0) == ["c", "d", "e"]  # big enough; the rest waits
    assert len(batch) == 2
    assert batch.take(now=2.0, force=True) == ["f", "g"]
    batch.add("x" * 50, now=3.0)
    assert batch.take(now=3.0, force=True) == ["x" * 10 + " …"]
    assert batch.take(now=9.0, force=True) == []


def test_lease_clock_retries_sooner_and_expires() -> None:
    clock = LeaseClock(heartbeat_seconds=10.0, lease_deadline=30.0)
    assert clock.next_beat_in(now=0.0, failed=False) == 10.0
    assert clock.next_beat_in(now=0.0, failed=True) == 2.5
    assert clock.next_beat_in(now=29.0, failed=True) == 0.5  # half the time left
    assert not clock.expired(29.9) and clock.expired(30.0)
    clock.renewed(now=30.0, lease_seconds_left=60.0)
    assert not clock.expired(89.0) and clock.expired(90.0)
