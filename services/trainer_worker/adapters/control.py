"""Cancel requests for a running attempt, pushed by training_run on the run's control subject (core NATS)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NATS

from common.logging import get_logger
from common.nats_streams import StreamNames
from common.proto.raven.v1 import events_pb2
from services.trainer_worker.service_layer.ports import CancelCallback, ControlChannel

log = get_logger("trainer_worker.control")


class NatsControlChannel(ControlChannel):
    def __init__(self, nc: NATS, names: StreamNames) -> None:
        self._nc = nc
        self._names = names

    async def subscribe(self, run_id: str, on_cancel: CancelCallback) -> Callable[[], Awaitable[None]]:
        async def on_message(raw: Any) -> None:
            control = events_pb2.RunControl()
            try:
                control.ParseFromString(raw.data)
            except Exception:
                log.warning("unreadable control message", run_id=run_id)
                return
            if control.cancel:
                on_cancel(control.attempt, control.reason)

        subscription = await self._nc.subscribe(self._names.run_control_subject(run_id), cb=on_message)
        return subscription.unsubscribe
