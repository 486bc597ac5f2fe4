"""Durable consumer of dataset version events: DatasetVersionEvent protobuf → ReportedPreparation → tracking.

A message is acked only after the tracking has committed it; one that cannot be applied is dead-lettered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from common.consumers import consume_in_background
from common.dead_letters import DeadLetters
from common.logging import get_logger
from common.nats_streams import StreamNames, ensure_dataset_events_consumer
from common.proto.raven.v1 import datasets_pb2 as pb
from common.tasks import cancel_and_wait
from services.training_run.adapters.dataset_mapping import result_from_proto
from services.training_run.adapters.proto_mapping import failure_from_proto
from services.training_run.service_layer.dataset_tracking import ReportedPreparation

DURABLE = "training-run-dataset-tracker"
log = get_logger("training_run.dataset_events")


def reported(event: pb.DatasetVersionEvent, seq: int) -> ReportedPreparation | None:
    kind = event.WhichOneof("payload")
    if kind is None or kind == "state_changed" or not event.dataset_version:
        return None  # state changes are training_run's own
    base = {"dataset_version": event.dataset_version, "seq": seq, "kind": kind}
    if kind == "progress":
        return ReportedPreparation(**base, progress=event.progress.progress.SerializeToString())
    if kind == "completed":
        return ReportedPreparation(**base, result=result_from_proto(event.completed))
    if kind == "failed":
        return ReportedPreparation(**base, failure=failure_from_proto(event.failed.failure))
    return ReportedPreparation(**base)


class DatasetEventConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        names: StreamNames,
        apply: Callable[[ReportedPreparation], Awaitable[bool]],
        dead_letters: DeadLetters,
    ) -> None:
        self._js = js
        self._names = names
        self._apply = apply
        self._dead_letters = dead_letters
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await ensure_dataset_events_consumer(self._js, DURABLE, self._names, self._dead_letters.policy)
        self._task = await consume_in_background(
            self._js, self._names.events, DURABLE, self._handle, name="training_run.dataset_event_consumer",
            batch=50, logger=log, failure="fetching dataset version events failed",
        )  # fmt: skip

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _handle(self, msg: Msg) -> None:
        try:
            event = pb.DatasetVersionEvent.FromString(msg.data)
        except DecodeError as exc:
            await self._dead_letters.unreadable(msg, f"not a DatasetVersionEvent: {exc}")
            return
        seq = msg.metadata.sequence.stream
        report = reported(event, seq)
        try:
            if report is not None:
                await self._apply(report)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("applying dataset version event failed", version=event.dataset_version, seq=seq)
            await self._dead_letters.failed(
                msg, f"applying the {report.kind if report else ''} event failed: {exc!r}"
            )
            return
        await msg.ack()
