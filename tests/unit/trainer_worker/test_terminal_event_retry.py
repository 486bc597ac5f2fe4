"""A terminal event is retried by common.retry's loop: 6 tries, then EventPublishFailed."""

from __future__ import annotations

from typing import Any

import pytest

from common.nats_streams import StreamNames
from common.retry import RetryPolicy
from services.trainer_worker.adapters import events
from services.trainer_worker.adapters.events import RunEventPublisher
from services.trainer_worker.service_layer.ports import EventPublishFailed


class FlakyJetStream:
    """Answers the first ``failures`` publishes with a timeout, then stores."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def publish(self, subject: str, payload: bytes, **kwargs: Any) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise TimeoutError("no ack")


@pytest.fixture(autouse=True)
def fast_terminal_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = RetryPolicy(max_attempts=events.TERMINAL_RETRY.max_attempts, initial_backoff=0.001, jitter=False)
    monkeypatch.setattr(events, "TERMINAL_RETRY", fast)


NAMES = StreamNames(jobs="JOBS_t", events="EVENTS_t", prefix="t")


async def test_a_terminal_event_is_retried_until_stored() -> None:
    js = FlakyJetStream(failures=5)
    publisher = RunEventPublisher(js, NAMES, "r1", 1)  # type: ignore[arg-type]
    await publisher.cancelled("user asked")
    assert js.calls == 6 and publisher.published == ["cancelled"]


async def test_six_failed_tries_raise() -> None:
    js = FlakyJetStream(failures=6)
    with pytest.raises(EventPublishFailed, match="cancelled event for run r1 not stored"):
        await RunEventPublisher(js, NAMES, "r1", 1).cancelled("user asked")  # type: ignore[arg-type]
    assert js.calls == 6
