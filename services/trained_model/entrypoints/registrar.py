"""Durable JetStream consumer that turns each ``completed`` RunEvent into exactly one TrainedModel.

Order per message: register (idempotent on the run id; the database's unique constraint settles races) →
publish ``model_registered`` (or ``registration_failed``) and wait for JetStream's ack → ack the event. A
crash anywhere leaves the event unacked, so it is redelivered; a redelivery finds the model and publishes
``model_registered`` again, which JetStream deduplicates by ``Nats-Msg-Id: registered:{run_id}:{attempt}``.
The attempt is part of the id: when a stale attempt's ``completed`` (from a worker that lost its lease)
was registered first, the current attempt's ``completed`` finds that model and its answer must still reach
training_run, which waits for it. No outbox is needed because the publication is derived from durable state
and repeated until acknowledged.

Completed after cancel: a run training_run reports CANCELLING or CANCELLED gets no model (and no reply); a
model registered just before the cancel won is removed when training_run announces the run CANCELLED
(``state_changed``), which comes after the run's ``completed`` in the stream and is handled after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import nats.errors
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from common.dead_letters import DeadLetters
from common.logging import get_logger
from common.nats_streams import StreamNames, consume_batches, ensure_events_consumer
from common.proto.raven.v1 import events_pb2, types_pb2
from common.tasks import cancel_and_wait
from services.trained_model.entrypoints import convert
from services.trained_model.service_layer.registration import Discarded, ModelRegistration, Registered

log = get_logger("trained_model.registrar")

DURABLE = "trained-model-registrar"
RETRY_DELAY_SECONDS = 2.0


def registered_msg_id(run_id: str, attempt: int) -> str:
    return f"registered:{run_id}:{attempt}"


def failed_msg_id(run_id: str, attempt: int) -> str:
    return f"registration_failed:{run_id}:{attempt}"


class Registrar:
    def __init__(
        self,
        js: JetStreamContext,
        names: StreamNames,
        registration: ModelRegistration,
        clock: Callable[[], datetime],
        dead_letters: DeadLetters,
        *,
        batch: int = 16,
    ) -> None:
        self._js = js
        self._names = names
        self._registration = registration
        self._clock = clock
        self._dead_letters = dead_letters
        self._durable = dead_letters.consumer
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await ensure_events_consumer(self._js, self._durable, self._names, self._dead_letters.policy)
        subscription = await self._js.pull_subscribe_bind(durable=self._durable, stream=self._names.events)
        self._task = asyncio.create_task(self._run(subscription), name="trained-model-registrar")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self, subscription: JetStreamContext.PullSubscription) -> None:
        await consume_batches(
            subscription,
            self._handle_all,
            batch=self._batch,
            logger=log,
            failure="fetch failed",
            retry_delay=RETRY_DELAY_SECONDS,
            quiet=(nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError),
        )

    async def _handle_all(self, messages: list[Msg]) -> None:
        # Runs concurrently, each run's messages in stream order: a CANCELLED announcement must not overtake
        # the registration of the same run's `completed`. Duplicates of one event still race on the unique
        # constraint across batches, which is what it is for.
        by_run: dict[str, list[Msg]] = {}
        for msg in messages:
            by_run.setdefault(msg.subject, []).append(msg)
        await asyncio.gather(*(self._handle_in_order(run_messages) for run_messages in by_run.values()))

    async def _handle_in_order(self, messages: list[Msg]) -> None:
        for msg in messages:
            await self.handle(msg)

    async def handle(self, msg: Msg) -> None:
        try:
            event = events_pb2.RunEvent.FromString(msg.data)
        except DecodeError as exc:
            await self._dead_letters.unreadable(msg, f"not a RunEvent: {exc}")
            return
        kind = event.WhichOneof("payload")
        cancelled = kind == "state_changed" and event.state_changed.to_state == types_pb2.CANCELLED
        if not event.run_id or not (kind == "completed" or cancelled):
            await msg.ack()
            return
        try:
            if cancelled:
                await self._registration.discard_cancelled(event.run_id)
            else:
                await self._register(event)
        except Exception as exc:
            log.exception("registration failed; will retry", run_id=event.run_id)
            with contextlib.suppress(Exception):
                await self._dead_letters.failed(msg, f"registering the model: {exc!r}")
            return
        await msg.ack()

    async def _register(self, event: events_pb2.RunEvent) -> None:
        outcome = await self._registration.register_completed(convert.register_command(event))
        if isinstance(outcome, Discarded):
            log.info("model not registered", run_id=event.run_id, reason=outcome.message)
            return
        reply = events_pb2.RunEvent(
            run_id=event.run_id, attempt=event.attempt, time=convert.timestamp(self._clock())
        )
        if isinstance(outcome, Registered):
            reply.model_registered.trained_model_id = outcome.model.id
            msg_id = registered_msg_id(event.run_id, event.attempt)
        else:
            log.warning("model not registered", run_id=event.run_id, reason=outcome.message)
            reply.registration_failed.failure.kind = types_pb2.ARTIFACT_MISMATCH
            reply.registration_failed.failure.message = outcome.message
            msg_id = failed_msg_id(event.run_id, event.attempt)
        await self._js.publish(
            self._names.run_events_subject(event.run_id),
            reply.SerializeToString(),
            headers={"Nats-Msg-Id": msg_id},
        )
