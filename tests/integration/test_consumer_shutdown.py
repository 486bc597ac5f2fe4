"""The durable consumers' pull loop on a real nats-server stops when its connection closes.

nats-py's ``next_msg`` turns a cancellation that meets a closed connection into ``ConnectionClosedError``;
the loop used to retry that forever, so a consumer cancelled as its connection closed (a service shutting
down, a test session's loop cancelling its leftover tasks) never ended and whatever awaited it hung.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from common.logging import get_logger
from common.nats_streams import StreamNames, connect, consume_batches, ensure_events_consumer, ensure_streams
from common.tasks import cancel_and_wait

pytestmark = pytest.mark.timeout(60)


@contextlib.asynccontextmanager
async def fetching_consumer(nats_url: str, unique: str) -> AsyncIterator[tuple[asyncio.Task[None], object]]:
    """A consumer waiting in its fetch, and its connection."""
    names = StreamNames(jobs=f"CSJ_{unique}", events=f"CSE_{unique}", prefix=f"cs{unique}")
    nc = await connect(nats_url, "test-consumer-shutdown")
    js: JetStreamContext = nc.jetstream()
    await ensure_streams(js, names)
    await ensure_events_consumer(js, "shutdown", names)
    subscription = await js.pull_subscribe_bind("shutdown", names.events)

    async def handle(messages: list[Msg]) -> None:
        pass

    task = asyncio.create_task(
        consume_batches(
            subscription, handle, batch=10, logger=get_logger("test"), failure="fetch failed", retry_delay=0.1
        ),
        name="test.consumer",
    )
    await asyncio.sleep(0.3)  # inside fetch, waiting for messages
    try:
        yield task, nc
    finally:
        for _ in range(3):  # never leave a running loop behind for the session's event loop
            if await cancel_and_wait(task, within=1):
                break
        if not nc.is_closed:
            await nc.close()


async def test_a_consumer_cancelled_as_its_connection_closes_stops(nats_url: str, unique: str) -> None:
    async with fetching_consumer(nats_url, unique) as (task, nc):
        task.cancel()
        await nc.close()  # type: ignore[attr-defined]
        done, _ = await asyncio.wait({task}, timeout=3)
        assert done and task.cancelled()


async def test_a_consumer_whose_connection_closed_stops_by_itself(nats_url: str, unique: str) -> None:
    async with fetching_consumer(nats_url, unique) as (task, nc):
        await nc.close()  # type: ignore[attr-defined]
        done, _ = await asyncio.wait({task}, timeout=3)
        assert done and task.exception() is None
