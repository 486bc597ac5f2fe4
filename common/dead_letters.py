"""Poison messages: the one way every JetStream consumer settles a delivery that failed.

A failed delivery is nak'ed with the consumer's backoff. On the last delivery JetStream will make (or at once,
for a payload that can never be read) the message is terminated and a ``DeadLetter`` record (original subject,
headers, payload, delivery count, consumer, the last error) goes to the dead-letter stream, where
training_run picks it up and ends the run it concerns FAILED (a dataset preparation job: marks its version
INVALID, which fails the runs waiting for it; ``preparation_version``). A message that gets no answer at all
(its consumer crashes or hangs on it every time) reaches ``max_deliver`` by JetStream's own redeliveries; the
MAX_DELIVERIES advisory is captured by the same stream and turned into a record by ``record_from_advisory``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from google.protobuf.message import DecodeError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import Counter

from common.logging import get_logger
from common.nats_streams import RetryPolicy, StreamNames
from common.proto.raven.v1 import datasets_pb2, dead_letters_pb2, events_pb2

log = get_logger("dead_letters")

DEAD_LETTERED = Counter(
    "raven_dead_lettered_messages_total",
    "Messages a consumer gave up on: terminated and recorded on the dead-letter stream",
    ["consumer", "reason"],
)
RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
VERSION_NAME = re.compile(r"^datasets/[A-Za-z0-9_-]{1,64}/versions/[1-9][0-9]{0,9}$")
MAX_ERROR_CHARS = 2000


class DeadLetterReason(StrEnum):
    UNDECODABLE = "undecodable"  # the payload can never be read: dead-lettered on its first delivery
    HANDLER_FAILED = "handler_failed"  # the handler failed on every delivery up to max_deliver
    NO_ACK = "no_ack"  # max_deliver deliveries without any answer (from JetStream's advisory)


@dataclass(frozen=True)
class Concerns:
    """The run (and attempt; 0 = unknown) a message is about; empty when it can't be told."""

    run_id: str = ""
    attempt: int = 0


def concerns(names: StreamNames, subject: str, headers: dict[str, str] | None, payload: bytes) -> Concerns:
    """The run a job or run event is about: from the payload, else the job's Nats-Msg-Id or the subject."""
    if names.is_training_jobs_subject(subject):
        job = _parsed(events_pb2.TrainingJob, payload)
        if job is not None and RUN_ID.match(job.run_id):
            return Concerns(job.run_id, max(job.attempt, 0))
        run_id, _, attempt = (headers or {}).get("Nats-Msg-Id", "").partition(":")
        if RUN_ID.match(run_id):
            return Concerns(run_id, int(attempt) if attempt.isdigit() else 0)
        return Concerns()
    parts = subject.split(".")
    if len(parts) == 4 and parts[0] == names.prefix and parts[1] == "runs" and parts[3] == "events":
        event = _parsed(events_pb2.RunEvent, payload)
        if event is not None and event.run_id == parts[2]:
            return Concerns(event.run_id, max(event.attempt, 0))
        return Concerns(parts[2]) if RUN_ID.match(parts[2]) else Concerns()
    return Concerns()


def preparation_version(names: StreamNames, record: dead_letters_pb2.DeadLetter) -> str:
    """The dataset version a dead-lettered preparation job was about, from its payload or its Nats-Msg-Id
    ("{version}:{attempt}"); '' for any other message, or when neither names one."""
    if record.subject != names.dataset_jobs_subject:
        return ""
    job = _parsed(datasets_pb2.DatasetPreparationJob, record.payload)
    if job is not None and VERSION_NAME.match(job.dataset_version):
        return str(job.dataset_version)
    name = record.headers.get("Nats-Msg-Id", "").rpartition(":")[0]
    return name if VERSION_NAME.match(name) else ""


def describe_preparation(record: dead_letters_pb2.DeadLetter) -> str:
    """The problem recorded on a version whose preparation job was given up."""
    return (
        f"preparation failed {record.deliveries} time(s) and was given up ({record.reason}): {record.error}; "
        "create the version again, and ask an operator if it fails again"
    )


def _parsed(message_type: Any, payload: bytes) -> Any:
    try:
        return message_type.FromString(payload)
    except DecodeError:
        return None


def utc_now() -> datetime:
    return datetime.now(UTC)


def make_record(
    names: StreamNames,
    *,
    consumer: str,
    stream: str,
    sequence: int,
    subject: str,
    headers: dict[str, str] | None,
    payload: bytes,
    deliveries: int,
    reason: DeadLetterReason,
    error: str,
    now: datetime,
) -> dead_letters_pb2.DeadLetter:
    about = concerns(names, subject, headers, payload)
    record = dead_letters_pb2.DeadLetter(
        consumer=consumer,
        stream=stream,
        stream_sequence=sequence,
        subject=subject,
        headers=dict(headers or {}),
        payload=payload,
        deliveries=deliveries,
        reason=reason.value,
        error=error[:MAX_ERROR_CHARS],
        run_id=about.run_id,
        attempt=about.attempt,
    )
    record.time.FromDatetime(now)
    return record


async def publish_record(
    js: JetStreamContext, names: StreamNames, record: dead_letters_pb2.DeadLetter
) -> None:
    """Stores the record (JetStream acks it); a repeat for the same message and consumer is deduplicated."""
    msg_id = f"dl:{record.stream}:{record.consumer}:{record.stream_sequence}"
    await js.publish(
        names.dead_letter_subject(record.consumer),
        record.SerializeToString(),
        headers={"Nats-Msg-Id": msg_id},
    )


def describe(record: dead_letters_pb2.DeadLetter) -> str:
    """The failure message of the run a record concerns: what failed, how often, and why."""
    return (
        f"a message about this run ({record.subject}) failed {record.deliveries} time(s) in "
        f"{record.consumer} "
        f"and was dead-lettered ({record.reason}): {record.error}"
    )


class DeadLetters:
    """Settles failed deliveries of one durable consumer: nak with backoff, or dead-letter and terminate."""

    def __init__(
        self,
        js: JetStreamContext,
        names: StreamNames,
        consumer: str,
        policy: RetryPolicy,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._js = js
        self._names = names
        self.consumer = consumer
        self.policy = policy
        self._clock = clock
        for reason in DeadLetterReason:  # every series exists from the start, at 0, so rate() and alerts work
            DEAD_LETTERED.labels(consumer, reason.value)

    async def failed(self, msg: Any, error: str) -> bool:
        """A delivery failed: nak it, or dead-letter it on its last delivery; True when dead-lettered."""
        delivered = deliveries(msg)
        if self.policy.exhausted(delivered):
            if await self.dead_letter(msg, DeadLetterReason.HANDLER_FAILED, error):
                return True
        await msg.nak(delay=self.policy.nak_delay(delivered))
        return False

    async def unreadable(self, msg: Any, error: str) -> None:
        """A payload that can never be read: dead-lettered at once (retried only if the record failed)."""
        if not await self.dead_letter(msg, DeadLetterReason.UNDECODABLE, error):
            await msg.nak(delay=self.policy.nak_delay(deliveries(msg)))

    async def dead_letter(self, msg: Any, reason: DeadLetterReason, error: str) -> bool:
        """Records the message on the dead-letter stream, then terminates it; False when the record failed.

        Without a stored record the message is not terminated: past max_deliver, JetStream's advisory follows.
        """
        metadata = msg.metadata
        record = make_record(
            self._names,
            consumer=self.consumer,
            stream=metadata.stream,
            sequence=metadata.sequence.stream,
            subject=msg.subject,
            headers=msg.headers,
            payload=bytes(msg.data),
            deliveries=deliveries(msg),
            reason=reason,
            error=error,
            now=self._clock(),
        )
        try:
            await publish_record(self._js, self._names, record)
        except Exception as exc:
            log.error("dead-letter record not stored", consumer=self.consumer, error=repr(exc))
            return False
        await msg.term()
        DEAD_LETTERED.labels(self.consumer, reason.value).inc()
        log.error(
            "message dead-lettered",
            consumer=self.consumer,
            subject=record.subject,
            run_id=record.run_id,
            deliveries=record.deliveries,
            reason=reason.value,
            error=record.error,
        )
        return True


def deliveries(msg: Any) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except Exception:
        return 1


async def record_from_advisory(
    js: JetStreamContext, names: StreamNames, data: bytes, now: datetime
) -> dead_letters_pb2.DeadLetter | None:
    """The record for a MAX_DELIVERIES advisory, or None when the message is gone (settled meanwhile)."""
    try:
        advisory = json.loads(data)
        stream, consumer = str(advisory["stream"]), str(advisory["consumer"])
        sequence, delivered = int(advisory["stream_seq"]), int(advisory.get("deliveries", 0))
    except (ValueError, KeyError, TypeError):
        log.warning("unreadable max-deliveries advisory dropped")
        return None
    try:
        original = await js.get_msg(stream, sequence)
    except NotFoundError:
        return None
    return make_record(
        names,
        consumer=consumer,
        stream=stream,
        sequence=sequence,
        subject=original.subject or "",
        headers={str(k): str(v) for k, v in (original.headers or {}).items()},
        payload=original.data or b"",
        deliveries=delivered,
        reason=DeadLetterReason.NO_ACK,
        error=(
            f"delivered {delivered} times (max_deliver) and never acknowledged: its consumer crashed, hung, "
            "lost its connection or handed it back every time"
        ),
        now=now,
    )
