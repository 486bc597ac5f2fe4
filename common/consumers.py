"""A service's durable pull consumer run in the background: bind it, then ``consume_batches`` in a task.

Used by the consumers that handle a batch's messages one after another, in stream order (training_run's run
events, dataset version events and dead letters). The consumer itself is provisioned by its caller first
(``common.nats_streams.ensure_*_consumer``): each names its own filter and ack wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from common.nats_streams import consume_batches

GIVE_BACK_SECONDS = 2.0


async def consume_in_background(
    js: JetStreamContext,
    stream: str,
    durable: str,
    handle: Callable[[Msg], Awaitable[object]],
    *,
    name: str,
    batch: int,
    logger: structlog.stdlib.BoundLogger,
    failure: str,
    retry_delay: float = 0.5,
) -> asyncio.Task[None]:
    """The task (named ``name``) that fetches up to ``batch`` messages of ``durable`` on ``stream`` at a time
    and awaits ``handle`` on each in stream order; ``common.tasks.cancel_and_wait`` stops it.

    Messages fetched but not handled when it stops are given back (nak): JetStream redelivers them first, at
    once, to whoever consumes next, instead of after the ack wait, behind newer messages."""
    subscription = await js.pull_subscribe_bind(durable=durable, stream=stream)

    async def in_order(messages: list[Msg]) -> None:
        for index, message in enumerate(messages):
            try:
                await handle(message)
            except asyncio.CancelledError:
                await _give_back(messages[index:])
                raise

    loop = consume_batches(
        subscription, in_order, batch=batch, logger=logger, failure=failure, retry_delay=retry_delay
    )
    return asyncio.create_task(loop, name=name)


async def _give_back(messages: list[Msg]) -> None:
    """Naks ``messages`` (an acked one ignores it), bounded: a closed connection must not hold a stop."""
    with contextlib.suppress(Exception):
        naks = asyncio.gather(*(m.nak() for m in messages), return_exceptions=True)
        await asyncio.wait_for(naks, GIVE_BACK_SECONDS)
