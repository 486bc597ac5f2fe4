"""common.nats_streams.consume_batches: the pull loop shared by the services' durable consumers."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import pytest

from common.nats_streams import FETCH_WAIT_SECONDS, consume_batches


class _Subscription:
    def __init__(self, script: list[Any]) -> None:
        self._script = script
        self.fetches: list[tuple[int, float]] = []
        self.idle = asyncio.Event()

    async def fetch(self, batch: int, timeout: float) -> list[str]:  # noqa: ASYNC109 (nats signature)
        self.fetches.append((batch, timeout))
        if not self._script:
            self.idle.set()
            await asyncio.Event().wait()  # like a fetch that waits until cancelled
        step = self._script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return list(step)


class _Log:
    def __init__(self) -> None:
        self.exceptions: list[str] = []

    def exception(self, event: str) -> None:
        self.exceptions.append(event)


async def test_batches_go_to_the_handler_timeouts_fetch_again_and_failures_are_logged_and_retried() -> None:
    subscription = _Subscription(
        [
            TimeoutError(),
            nats.errors.TimeoutError(),
            ["a", "b"],
            RuntimeError("server gone"),
            nats.errors.ConnectionReconnectingError(),
            [],
            ["c"],
        ]
    )
    handled: list[list[str]] = []
    log = _Log()

    async def handle(messages: list[str]) -> None:
        handled.append(messages)

    task = asyncio.create_task(
        consume_batches(
            subscription,  # type: ignore[arg-type]
            handle,  # type: ignore[arg-type]
            batch=7,
            logger=log,  # type: ignore[arg-type]
            failure="fetching things failed",
            retry_delay=0.001,
            quiet=(nats.errors.ConnectionReconnectingError,),
        )
    )
    await asyncio.wait_for(subscription.idle.wait(), 5)
    assert handled == [["a", "b"], [], ["c"]]
    assert log.exceptions == ["fetching things failed"]  # the quiet reconnect is not logged
    assert subscription.fetches == [(7, FETCH_WAIT_SECONDS)] * 8
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class _SwallowingSubscription:
    """A fetch that loses its cancellation and returns a batch, as Python 3.11's asyncio.wait_for does when
    the cancel arrives just as the message does (nats-py's next_msg waits in it)."""

    def __init__(self) -> None:
        self.fetches = 0
        self.waiting = asyncio.Event()

    async def fetch(self, batch: int, timeout: float) -> list[str]:  # noqa: ASYNC109 (nats signature)
        self.fetches += 1
        self.waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return ["arrived with the cancel"]
        return []


async def test_a_cancellation_lost_inside_the_fetch_still_ends_the_loop() -> None:
    subscription = _SwallowingSubscription()
    handled: list[list[str]] = []

    async def handle(messages: list[str]) -> None:
        handled.append(messages)

    task = asyncio.create_task(
        consume_batches(
            subscription,  # type: ignore[arg-type]
            handle,  # type: ignore[arg-type]
            batch=1,
            logger=_Log(),  # type: ignore[arg-type]
            failure="fetch failed",
            retry_delay=0.001,
        )
    )
    await asyncio.wait_for(subscription.waiting.wait(), 5)
    task.cancel()  # once: the fetch swallows it
    done, _ = await asyncio.wait({task}, timeout=2)
    try:
        assert done and task.cancelled()
        assert handled == [["arrived with the cancel"]] and subscription.fetches == 1
    finally:
        if not done:  # the old loop: fetching again, never to end by itself
            task.cancel()
            await asyncio.wait({task}, timeout=2)
