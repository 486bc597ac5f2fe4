"""Durable JetStream consumer of every evaluation's worker reports (``raven.evaluations.*.events``), and the
relay that queues evaluations whose job was not stored at Create.

A report is applied (``Evaluations.apply_report``: one transition, stale attempts and late results dropped),
then acked; a failure leaves it unacked (redelivered, dead-lettered at the end like the registrar's).
"""

from __future__ import annotations

import asyncio
import contextlib

import nats.errors
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from common.dead_letters import DeadLetters
from common.logging import get_logger
from common.nats_streams import StreamNames, consume_batches, ensure_evaluation_events_consumer
from common.proto.raven.v1 import evaluations_pb2
from common.tasks import cancel_and_wait
from services.trained_model.entrypoints.evaluation_convert import report_from_event
from services.trained_model.service_layer.evaluations import Evaluations

log = get_logger("trained_model.evaluations")

DURABLE = "trained-model-evaluations"
RETRY_DELAY_SECONDS = 2.0
RELAY_SECONDS = 5.0


class EvaluationTracker:
    def __init__(
        self,
        js: JetStreamContext,
        names: StreamNames,
        evaluations: Evaluations,
        dead_letters: DeadLetters,
        *,
        relay_seconds: float = RELAY_SECONDS,
    ) -> None:
        self._js = js
        self._names = names
        self._evaluations = evaluations
        self._dead_letters = dead_letters
        self._relay_seconds = relay_seconds
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        durable = self._dead_letters.consumer
        await ensure_evaluation_events_consumer(self._js, durable, self._names, self._dead_letters.policy)
        subscription = await self._js.pull_subscribe_bind(durable=durable, stream=self._names.events)
        self._tasks = [
            asyncio.create_task(self._consume(subscription), name="evaluation-tracker"),
            asyncio.create_task(self._relay(), name="evaluation-relay"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)

    async def _consume(self, subscription: JetStreamContext.PullSubscription) -> None:
        await consume_batches(
            subscription, self._handle_all, batch=16, logger=log, failure="fetch failed",
            retry_delay=RETRY_DELAY_SECONDS,
            quiet=(nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError),
        )  # fmt: skip

    async def _handle_all(self, messages: list[Msg]) -> None:
        for msg in messages:  # in stream order: an evaluation's started comes before its result
            await self.handle(msg)

    async def handle(self, msg: Msg) -> None:
        try:
            event = evaluations_pb2.EvaluationEvent.FromString(msg.data)
        except DecodeError as exc:
            await self._dead_letters.unreadable(msg, f"not an EvaluationEvent: {exc}")
            return
        report = report_from_event(event)
        if report is None or not event.evaluation_id:
            await msg.ack()
            return
        try:
            await self._evaluations.apply_report(report)
        except Exception as exc:
            log.exception("evaluation report not applied; will retry", evaluation=event.evaluation_id)
            with contextlib.suppress(Exception):
                await self._dead_letters.failed(msg, f"applying the evaluation report: {exc!r}")
            return
        await msg.ack()

    async def _relay(self) -> None:
        while True:
            await asyncio.sleep(self._relay_seconds)
            try:
                await self._evaluations.publish_pending()
            except Exception as exc:  # database or training_run briefly away: next round
                log.warning("evaluation relay round failed", error=str(exc))
