"""Durable consumer of the dead-letter stream: every poison message ends the run it concerns FAILED; a
dataset preparation job that was given up marks its version INVALID (the runs waiting for it end FAILED).

Two kinds of messages arrive: ``DeadLetter`` records (written by any consumer that gave up on a message) and
JetStream's MAX_DELIVERIES advisories (a message whose consumer never answered, e.g. a worker that crashes
on it every time). An advisory is turned into a record on the same stream (the original message is fetched
and, from the work queue, removed), which then comes back here like any other record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from common.consumers import consume_in_background
from common.dead_letters import (
    DEAD_LETTERED,
    DeadLetterReason,
    DeadLetters,
    describe,
    describe_preparation,
    preparation_version,
    publish_record,
    record_from_advisory,
)
from common.logging import get_logger
from common.nats_streams import MAX_DELIVERIES_ADVISORY, StreamNames, ensure_dead_letters_consumer
from common.proto.raven.v1 import dead_letters_pb2
from common.tasks import cancel_and_wait

DURABLE = "training-run-dead-letters"
log = get_logger("training_run.dead_letters")

# (run id, attempt or 0 for "whatever attempt is current", failure message) -> whether the run changed
FailRun = Callable[[str, int, str], Awaitable[bool]]
# (dataset version name, problem) -> whether the version changed
FailVersion = Callable[[str, str], Awaitable[bool]]


class DeadLetterConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        names: StreamNames,
        fail_run: FailRun,
        dead_letters: DeadLetters,
        clock: Callable[[], datetime],
        *,
        fail_version: FailVersion | None = None,
        batch: int = 50,
    ) -> None:
        self._js = js
        self._names = names
        self._fail_run = fail_run
        self._fail_version = fail_version
        self._dead_letters = dead_letters
        self._clock = clock
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await ensure_dead_letters_consumer(self._js, DURABLE, self._names, self._dead_letters.policy)
        self._task = await consume_in_background(
            self._js, self._names.dead_letters_stream, DURABLE, self.handle, name="training_run.dead_letters",
            batch=self._batch, logger=log, failure="fetching dead letters failed",
        )  # fmt: skip

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def handle(self, msg: Msg) -> None:
        try:
            if msg.subject.startswith(MAX_DELIVERIES_ADVISORY):
                await self._advisory(msg.data)
            else:
                await self._record(msg.data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("handling a dead letter failed", subject=msg.subject)
            if await self._dead_letters.failed(msg, repr(exc)):
                log.error("dead letter given up: its run was not failed", subject=msg.subject)
            return
        await msg.ack()

    async def _advisory(self, data: bytes) -> None:
        record = await record_from_advisory(self._js, self._names, data, self._clock())
        if record is None:
            return
        await publish_record(self._js, self._names, record)
        DEAD_LETTERED.labels(record.consumer, DeadLetterReason.NO_ACK.value).inc()
        log.error(
            "message dead-lettered after max deliveries without an answer",
            consumer=record.consumer,
            subject=record.subject,
            run_id=record.run_id,
            deliveries=record.deliveries,
        )
        if record.stream == self._names.jobs:
            try:  # a work-queue message past max_deliver would otherwise stay in the stream for ever
                await self._js.delete_msg(record.stream, record.stream_sequence)
            except NotFoundError:
                pass

    async def _record(self, data: bytes) -> None:
        try:
            record = dead_letters_pb2.DeadLetter.FromString(data)
        except DecodeError:
            log.warning("unreadable dead-letter record ignored")
            return
        version = preparation_version(self._names, record)
        if version and self._fail_version is not None:
            changed = await self._fail_version(version, describe_preparation(record))
            log.info("dead letter applied", dataset_version=version, version_failed=changed)
            return
        if not record.run_id:
            log.warning("dead letter about no known run", consumer=record.consumer, subject=record.subject)
            return
        changed = await self._fail_run(record.run_id, record.attempt, describe(record))
        log.info("dead letter applied", run_id=record.run_id, attempt=record.attempt, run_failed=changed)
