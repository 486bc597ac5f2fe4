"""A version's events for WatchDatasetVersion: stored ones after the resume token, then live ones.

One JetStream ordered consumer per watcher, starting right after the token: JetStream delivers the stored
messages and then the new ones in stream order, so there is no gap and no duplicate. A version has a few
dozen events and few watchers, so the per-run fan-out hub of WatchTrainingRun is not needed here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from common.errors import FieldViolation, InvalidArgument
from common.nats_streams import StreamNames
from common.proto.raven.v1 import datasets_pb2 as pb

POLL_SECONDS = 1.0


class DatasetVersionFeeds:
    def __init__(self, js: JetStreamContext, names: StreamNames) -> None:
        self._js = js
        self._names = names

    async def watch(
        self, dataset_id: str, number: int, after_seq: int
    ) -> AsyncIterator[pb.DatasetVersionEvent | None]:
        """Events with stream sequence > ``after_seq``; ``None`` once the stored ones are delivered."""
        stream = self._names.events
        subject = self._names.dataset_version_events_subject(dataset_id, number)
        if after_seq:
            stream_last = (await self._js.stream_info(stream)).state.last_seq or 0
            if after_seq > stream_last:
                raise InvalidArgument(
                    "resume_token is ahead of the event stream: use a token from a previous response",
                    [FieldViolation("resume_token", f"{after_seq} is beyond the last event ({stream_last})")],
                )
        try:
            last = (await self._js.get_last_msg(stream, subject)).seq or 0
        except NotFoundError:
            last = 0
        subscription = await self._js.subscribe(
            subject,
            stream=stream,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1
            ),
        )
        try:
            caught_up = last <= after_seq
            if caught_up:
                yield None
            while True:
                try:
                    msg = await subscription.next_msg(timeout=POLL_SECONDS)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                seq = msg.metadata.sequence.stream
                event = _decode(msg.data, seq)
                if event is not None:
                    yield event
                if not caught_up and seq >= last:
                    caught_up = True
                    yield None
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()


def _decode(data: bytes, seq: int) -> pb.DatasetVersionEvent | None:
    try:
        event = pb.DatasetVersionEvent.FromString(data)
    except Exception:
        return None
    event.sequence = seq
    return event
