"""Durable consumer of the run-events stream: RunEvent protobuf → ReportedEvent → service.

A message is acked only after the service has committed it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from google.protobuf.message import DecodeError
from nats.js import JetStreamContext

from common.consumers import consume_in_background
from common.dead_letters import DeadLetters
from common.logging import get_logger
from common.nats_streams import StreamNames, ensure_events_consumer
from common.proto.raven.v1 import events_pb2
from common.tasks import cancel_and_wait
from services.training_run.adapters.proto_mapping import failure_from_proto
from services.training_run.domain.model import Phase
from services.training_run.service_layer.commands import ReportedEvent

DURABLE = "training-run-tracker"
log = get_logger("training_run.events")


def reported_event(event: events_pb2.RunEvent, seq: int) -> ReportedEvent | None:
    kind = event.WhichOneof("payload")
    if kind is None or not event.run_id:
        return None
    base = {"run_id": event.run_id, "attempt": event.attempt, "seq": seq, "kind": kind}
    if kind == "phase_changed":
        return ReportedEvent(**base, phase=_phase(event.phase_changed.phase))
    if kind == "progress":
        snapshot = event.progress.progress
        return ReportedEvent(**base, phase=_phase(snapshot.phase), progress=snapshot.SerializeToString())
    if kind == "failed":
        return ReportedEvent(**base, failure=failure_from_proto(event.failed.failure))
    if kind == "registration_failed":
        return ReportedEvent(**base, failure=failure_from_proto(event.registration_failed.failure))
    if kind == "model_registered":
        return ReportedEvent(**base, trained_model_id=event.model_registered.trained_model_id)
    if kind == "cancelled":
        return ReportedEvent(**base, reason=event.cancelled.reason)
    if kind == "log":
        return ReportedEvent(**base, lines=tuple(event.log.lines))
    if kind == "completed":
        done = event.completed
        stopped = max(done.stopped_epoch, 0) if done.stopped_early else None
        budget = done.stopped_by_time_budget
        return ReportedEvent(**base, stopped_epoch=stopped, stopped_by_time_budget=budget)
    return ReportedEvent(**base)


def _phase(value: int) -> Phase | None:
    return Phase(value) if value in Phase._value2member_map_ and value else None


class EventConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        names: StreamNames,
        apply: Callable[[ReportedEvent], Awaitable[bool]],
        dead_letters: DeadLetters,
        *,
        batch: int = 100,
    ) -> None:
        self._js = js
        self._names = names
        self._apply = apply
        self._dead_letters = dead_letters
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await ensure_events_consumer(self._js, DURABLE, self._names, self._dead_letters.policy)
        self._task = await consume_in_background(
            self._js, self._names.events, DURABLE, self._handle, name="training_run.event_consumer",
            batch=self._batch, logger=log, failure="fetching run events failed",
        )  # fmt: skip

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _handle(self, message: object) -> None:
        msg = message  # nats.aio.msg.Msg
        try:
            event = events_pb2.RunEvent.FromString(msg.data)  # type: ignore[attr-defined]
        except DecodeError as exc:
            await self._dead_letters.unreadable(msg, f"not a RunEvent: {exc}")
            return
        seq = msg.metadata.sequence.stream  # type: ignore[attr-defined]
        reported = reported_event(event, seq)
        try:
            if reported is not None:
                await self._apply(reported)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("applying run event failed", run_id=event.run_id, seq=seq)
            what = reported.kind if reported is not None else "run"
            await self._dead_letters.failed(msg, f"applying the {what} event failed: {exc!r}")
            return
        await msg.ack()  # type: ignore[attr-defined]
