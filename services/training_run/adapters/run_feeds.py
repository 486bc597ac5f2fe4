"""Fan-out of run events to in-process watchers.

``RunFeedHub``: one JetStream ordered consumer per *watched run* (delivering new messages), shared by every
watcher of that run in this process; each live item carries the response rendered once per event (one snapshot
read, one serialization), and the same object goes to every watcher's queue. A new watcher joins the live
feed, then replays ``(resume_token, last stored sequence]`` with its own ephemeral ordered consumer, then
continues live, skipping what the replay already gave: no gap, no duplicate.

``RunChangesHub``: one core-NATS subscription on every run's events subject for ``WatchTrainingRuns``
dashboards, forwarding state and phase changes (published by any replica) to the in-process subscribers.

Both streams never end by themselves, so ``close`` ends every open one (UNAVAILABLE: reconnect, with the
last resume token) and refuses new ones: a stopping server then has nothing left to wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from common.errors import FieldViolation, InvalidArgument, Unavailable
from common.logging import get_logger
from common.nats_streams import StreamNames
from common.proto.raven.v1 import events_pb2
from services.training_run.domain.lifecycle import RunState

log = get_logger("training_run.feeds")
QUEUE_LIMIT = 10_000
Render = Callable[[events_pb2.RunEvent], Awaitable[Any]]


@dataclass(frozen=True)
class FeedItem:
    event: events_pb2.RunEvent  # ``sequence`` filled with the stream sequence
    rendered: Any  # what the hub's render function returned for a live event; None for replayed ones

    @property
    def ends_run(self) -> bool:
        """The event is the run's move to a terminal state: nothing follows it."""
        return (
            self.event.WhichOneof("payload") == "state_changed"
            and RunState(self.event.state_changed.to_state).terminal
        )


_OVERFLOW = FeedItem(events_pb2.RunEvent(), None)
_CLOSED = FeedItem(events_pb2.RunEvent(), None)
SHUTTING_DOWN = "the server is shutting down; reconnect (with the last resume_token) to continue"


def _end(queue: asyncio.Queue[FeedItem], item: FeedItem) -> None:
    """Replace whatever ``queue`` holds by ``item`` (its watcher's last one)."""
    queue._queue.clear()  # type: ignore[attr-defined]
    queue.put_nowait(item)


def _check(item: FeedItem, behind: str) -> None:
    if item is _OVERFLOW:
        raise Unavailable(behind)
    if item is _CLOSED:
        raise Unavailable(SHUTTING_DOWN)


class _Feed:
    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[FeedItem]] = set()
        self.subscription: Any = None

    def broadcast(self, item: FeedItem) -> None:
        for queue in list(self.queues):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                # a watcher that can't keep up is dropped; it resumes with its token
                self.queues.discard(queue)
                _end(queue, _OVERFLOW)


class RunFeedHub:
    def __init__(self, js: JetStreamContext, names: StreamNames, render: Render) -> None:
        self._js = js
        self._names = names
        self._render = render
        self._feeds: dict[str, _Feed] = {}
        self._lock = asyncio.Lock()
        self._closed = False
        self.watchers = 0  # a plain int: the metrics endpoint's thread reads it

    @property
    def subscriptions(self) -> int:
        return len(self._feeds)

    def open_streams(self) -> dict[str, int]:
        """Watchers per run: ``{"trainingRuns/<id>": n}``."""
        return {f"trainingRuns/{run_id}": len(feed.queues) for run_id, feed in self._feeds.items()}

    async def watch(self, run_id: str, after_seq: int, replay_only: bool = False) -> AsyncIterator[FeedItem]:
        """Events of ``run_id`` with stream sequence > ``after_seq``: the stored ones, then (unless
        ``replay_only``) live ones. Ends after the run's terminal event; else never by itself, but at
        ``close``: Unavailable. One generator from the queue to the caller: it runs per event and watcher.
        """
        if self._closed:
            raise Unavailable(SHUTTING_DOWN)
        if after_seq:
            # A token past the end of the stream was not handed out by us; waiting for it would never end.
            stream_last = (await self._js.stream_info(self._names.events)).state.last_seq or 0
            if after_seq > stream_last:
                raise InvalidArgument(
                    "resume_token is ahead of the event stream: use a token from a previous response",
                    [FieldViolation("resume_token", f"{after_seq} is beyond the last event ({stream_last})")],
                )
        if replay_only:  # the run is over and its terminal event stored: nothing live will come
            async for event in self._replay(run_id, after_seq):
                item = FeedItem(event, None)
                yield item
                if item.ends_run:
                    return
            return
        queue: asyncio.Queue[FeedItem] = asyncio.Queue(QUEUE_LIMIT)
        await self._join(run_id, queue)  # before the replay: what is published meanwhile waits in the queue
        try:
            last = after_seq
            async for event in self._replay(run_id, after_seq):
                last = event.sequence
                item = FeedItem(event, None)
                yield item
                if item.ends_run:
                    return
            while True:
                item = await queue.get()
                _check(item, "this watcher fell behind the run's events; resume with the last resume_token")
                if item.event.sequence > last:
                    last = item.event.sequence
                    yield item
                    if item.ends_run:
                        return
        finally:
            await self._leave(run_id, queue)

    async def _join(self, run_id: str, queue: asyncio.Queue[FeedItem]) -> None:
        async with self._lock:
            if self._closed:
                raise Unavailable(SHUTTING_DOWN)
            feed = self._feeds.get(run_id)
            if feed is None:
                feed = _Feed()

                async def on_message(msg: Msg) -> None:
                    event = _decode(msg)
                    if event is not None:
                        feed.broadcast(FeedItem(event, await self._render(event)))

                feed.subscription = await self._js.subscribe(
                    self._names.run_events_subject(run_id),
                    stream=self._names.events,
                    cb=on_message,
                    ordered_consumer=True,
                    deliver_policy=DeliverPolicy.NEW,
                )
                self._feeds[run_id] = feed
            feed.queues.add(queue)
            self.watchers += 1

    async def _leave(self, run_id: str, queue: asyncio.Queue[FeedItem]) -> None:
        async with self._lock:
            feed = self._feeds.get(run_id)
            if feed is None:
                return
            self.watchers -= 1
            feed.queues.discard(queue)
            if not feed.queues:
                del self._feeds[run_id]
                with contextlib.suppress(Exception):
                    await feed.subscription.unsubscribe()

    async def _replay(self, run_id: str, after_seq: int) -> AsyncIterator[events_pb2.RunEvent]:
        subject = self._names.run_events_subject(run_id)
        try:
            last = (await self._js.get_last_msg(self._names.events, subject)).seq or 0
        except NotFoundError:
            return
        if last <= after_seq:
            return
        subscription = await self._js.subscribe(
            subject,
            stream=self._names.events,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1
            ),
        )
        try:
            while True:
                msg = await subscription.next_msg(timeout=10)
                event = _decode(msg)
                if event is not None:
                    yield event
                if msg.metadata.sequence.stream >= last:
                    return
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def close(self) -> None:
        """End every open watch (its stream ends UNAVAILABLE) and refuse new ones."""
        async with self._lock:
            self._closed = True
            feeds, self._feeds = self._feeds, {}
            for feed in feeds.values():
                for queue in feed.queues:
                    _end(queue, _CLOSED)
                with contextlib.suppress(Exception):
                    await feed.subscription.unsubscribe()
            self.watchers = 0


def _decode(msg: Msg) -> events_pb2.RunEvent | None:
    try:
        event = events_pb2.RunEvent.FromString(msg.data)
    except Exception:
        return None
    event.sequence = msg.metadata.sequence.stream
    return event


class RunChangesHub:
    """State/phase changes of every run, for dashboards (``WatchTrainingRuns``)."""

    def __init__(self, nc: NATS, names: StreamNames, snapshot: Render) -> None:
        self._nc = nc
        self._names = names
        self._snapshot = snapshot
        self._queues: set[asyncio.Queue[FeedItem]] = set()
        self._subscription: Any = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def watchers(self) -> int:
        return len(self._queues)

    def open_streams(self) -> dict[str, int]:
        return {"trainingRuns (changes)": self.watchers} if self._queues else {}

    async def watch(self) -> AsyncIterator[FeedItem]:
        """State and phase changes of every run; never ends by itself but at ``close``: Unavailable."""
        queue: asyncio.Queue[FeedItem] = asyncio.Queue(QUEUE_LIMIT)
        async with self._lock:
            if self._closed:
                raise Unavailable(SHUTTING_DOWN)
            if self._subscription is None:
                self._subscription = await self._nc.subscribe(
                    self._names.events_subject_pattern, cb=self._on_message
                )
            self._queues.add(queue)
        try:
            while True:
                item = await queue.get()
                _check(item, "this watcher fell behind; reconnect")
                yield item
        finally:
            async with self._lock:
                self._queues.discard(queue)
                if not self._queues and self._subscription is not None:
                    with contextlib.suppress(Exception):
                        await self._subscription.unsubscribe()
                    self._subscription = None

    async def _on_message(self, msg: Msg) -> None:
        try:
            event = events_pb2.RunEvent.FromString(msg.data)
        except Exception:
            return
        if event.WhichOneof("payload") not in ("state_changed", "phase_changed"):
            return
        item = FeedItem(event, await self._snapshot(event))
        for queue in list(self._queues):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                self._queues.discard(queue)
                _end(queue, _OVERFLOW)

    async def close(self) -> None:
        """End every open watch (its stream ends UNAVAILABLE) and refuse new ones.

        The watchers' queues must be ended here: a watcher waits on its queue, never on the subscription,
        so unsubscribing alone left every open ``WatchTrainingRuns`` stream waiting forever.
        """
        async with self._lock:
            self._closed = True
            for queue in self._queues:
                _end(queue, _CLOSED)
            if self._subscription is not None:
                with contextlib.suppress(Exception):
                    await self._subscription.unsubscribe()
                self._subscription = None
