"""Publishes one attempt's RunEvents to its per-run subject on the events stream.

Progress is rate-limited (``ProgressThrottle``), log lines are batched (``LogBatch``), and terminal events
carry ``Nats-Msg-Id = {run_id}:{attempt}:{kind}`` and are retried until the stream acknowledges them, so
"published" means durably stored, never published twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import nats.errors
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext

from common.logging import get_logger
from common.nats_streams import StreamNames
from common.proto.raven.v1 import events_pb2, types_pb2
from common.retry import Failures, RetryPolicy
from services.trainer_worker.domain.job import LogBatch, ProgressThrottle, terminal_msg_id
from services.trainer_worker.service_layer.ports import EventPublishFailed, Reporter

log = get_logger("trainer_worker.events")

PUBLISH_TIMEOUT = 5.0
# A terminal event is tried 6 times, 0.25 s apart and doubling (0.25 + 0.5 + 1 + 2 + 4 s of waits).
TERMINAL_RETRY = RetryPolicy(max_attempts=6, initial_backoff=0.25, max_backoff=5.0, jitter=False)


async def publish_durably(publish: Callable[[], Awaitable[None]], what: str) -> None:
    """Retry ``publish`` (a deduplicated publish: same Nats-Msg-Id) until the stream stores it.

    Raises:
        EventPublishFailed: not stored after TERMINAL_RETRY's tries.
    """
    failures = Failures(TERMINAL_RETRY)
    while True:
        try:
            await publish()
            return
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("terminal event not stored yet", what=what, try_=failures.count + 1, error=str(exc))
            if not await failures.failed():
                raise EventPublishFailed(f"{what} not stored: {exc}") from exc


class SubjectPublisher:
    """Publishes one attempt's events, in order, to one subject: best effort or durably (deduplicated).

    The run and dataset-version publishers share it; ``published`` lists payload kinds (diagnostics).
    """

    def __init__(self, js: JetStreamContext, subject: str, what: str) -> None:
        self._js = js
        self.subject = subject
        self._what = what
        self._lock = asyncio.Lock()  # keeps this attempt's events in order on the subject
        self.published: list[str] = []

    async def publish(self, event: Message, msg_id: str | None = None) -> None:
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        async with self._lock:
            await self._js.publish(
                self.subject, event.SerializeToString(), timeout=PUBLISH_TIMEOUT, headers=headers
            )
            self.published.append(event.WhichOneof("payload") or "")

    async def best_effort(self, event: Message) -> None:
        """Non-terminal events: a lost one is superseded by the next; a broker hiccup never fails a job."""
        try:
            await self.publish(event)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning(
                "event not published", of=self._what, kind=event.WhichOneof("payload"), error=str(exc)
            )

    async def durably(self, event: Message, msg_id: str, kind: str) -> None:
        await publish_durably(lambda: self.publish(event, msg_id), f"{kind} event for {self._what}")


class RunEventPublisher(Reporter):
    def __init__(
        self,
        js: JetStreamContext,
        names: StreamNames,
        run_id: str,
        attempt: int,
        *,
        progress_every_iters: int = 10,
        progress_every_seconds: float = 2.0,
        log_batch: LogBatch | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = SubjectPublisher(js, names.run_events_subject(run_id), f"run {run_id}")
        self.run_id = run_id
        self.attempt = attempt
        self._throttle = ProgressThrottle(progress_every_iters, progress_every_seconds)
        self._logs = log_batch if log_batch is not None else LogBatch()  # an empty batch is falsy
        self._clock = clock
        self.published = self._out.published  # payload kinds, in order (diagnostics)

    def _event(self) -> events_pb2.RunEvent:
        now = Timestamp()
        now.GetCurrentTime()
        return events_pb2.RunEvent(run_id=self.run_id, attempt=self.attempt, time=now)

    async def _best_effort(self, event: events_pb2.RunEvent) -> None:
        await self._out.best_effort(event)

    async def started(self, worker_id: str, device: str, resumed_from: str = "") -> None:
        event = self._event()
        event.started.CopyFrom(
            events_pb2.RunStarted(
                worker_id=worker_id, device=device, resumed=bool(resumed_from), resumed_from=resumed_from
            )
        )
        await self._best_effort(event)

    async def phase(self, phase: types_pb2.RunPhase) -> None:
        event = self._event()
        event.phase_changed.phase = phase
        await self._best_effort(event)

    async def progress(self, snapshot: types_pb2.ProgressSnapshot, *, force: bool = False) -> bool:
        """Publishes when the throttle allows it (or ``force``); returns whether it did."""
        if not self._throttle.should_publish(int(snapshot.iter), self._clock(), force=force):
            return False
        event = self._event()
        event.progress.progress.CopyFrom(snapshot)
        if not event.progress.progress.HasField("update_time"):
            event.progress.progress.update_time.CopyFrom(event.time)
        await self._best_effort(event)
        return True

    async def log(self, line: str) -> None:
        self._logs.add(line, self._clock())
        await self.flush_logs(force=False)

    async def flush_logs(self, *, force: bool = True) -> None:
        while lines := self._logs.take(self._clock(), force=force):
            event = self._event()
            event.log.lines.extend(lines)
            await self._best_effort(event)
            if force:
                break

    async def _terminal(self, event: events_pb2.RunEvent, kind: str) -> None:
        await self.flush_logs()
        msg_id = terminal_msg_id(self.run_id, self.attempt, kind)
        await self._out.durably(event, msg_id, kind)

    async def completed(self, payload: events_pb2.RunCompleted) -> None:
        event = self._event()
        event.completed.CopyFrom(payload)
        await self._terminal(event, "completed")

    async def failed(self, failure: types_pb2.Failure) -> None:
        event = self._event()
        event.failed.failure.CopyFrom(failure)
        await self._terminal(event, "failed")

    async def cancelled(self, reason: str, last_checkpoint: str = "") -> None:
        event = self._event()
        event.cancelled.CopyFrom(events_pb2.RunCancelled(reason=reason, last_checkpoint=last_checkpoint))
        await self._terminal(event, "cancelled")
