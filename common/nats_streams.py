"""JetStream subjects, idempotent stream/consumer provisioning and connection helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from common.logging import get_logger

log = get_logger("nats")

WORKER_CONSUMER = "trainer-workers"


@dataclass(frozen=True)
class StreamNames:
    """Stream names and subject prefix; tests use unique ones to stay isolated on a shared server."""

    jobs: str = "RAVEN_JOBS"
    events: str = "RAVEN_RUN_EVENTS"
    prefix: str = "raven"

    @classmethod
    def from_settings(cls, settings: Any) -> StreamNames:
        return cls(jobs=settings.jobs_stream, events=settings.events_stream, prefix=settings.subject_prefix)

    @property
    def jobs_subject(self) -> str:
        return f"{self.prefix}.jobs.training"

    @property
    def events_subject_pattern(self) -> str:
        return f"{self.prefix}.runs.*.events"

    def run_events_subject(self, run_id: str) -> str:
        return f"{self.prefix}.runs.{run_id}.events"

    def run_control_subject(self, run_id: str) -> str:
        return f"{self.prefix}.control.{run_id}"


DEFAULT_STREAM_NAMES = StreamNames()


def job_msg_id(run_id: str, attempt: int) -> str:
    return f"{run_id}:{attempt}"


async def connect(url: str, name: str) -> NATS:
    """Connect with unbounded reconnects so a broker restart is survived, not fatal."""

    async def on_disconnect() -> None:
        log.warning("nats disconnected", url=url)

    async def on_reconnect() -> None:
        log.info("nats reconnected", url=url)

    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.stream_info(config.name or "")
    except NotFoundError:
        await js.add_stream(config)
        log.info("stream created", stream=config.name)
        return
    await js.update_stream(config)


async def ensure_streams(
    js: JetStreamContext, names: StreamNames = DEFAULT_STREAM_NAMES, replicas: int = 1
) -> None:
    """Create or update both streams (safe to call from every process at every start)."""
    await _ensure_stream(
        js,
        StreamConfig(
            name=names.jobs,
            subjects=[f"{names.prefix}.jobs.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=600.0,
            num_replicas=replicas,
        ),
    )
    await _ensure_stream(
        js,
        StreamConfig(
            name=names.events,
            subjects=[names.events_subject_pattern],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=30 * 24 * 3600.0,
            duplicate_window=600.0,
            num_replicas=replicas,
        ),
    )


async def ensure_worker_consumer(
    js: JetStreamContext,
    names: StreamNames = DEFAULT_STREAM_NAMES,
    ack_wait: float = 120.0,
    max_deliver: int = -1,
) -> str:
    """Durable pull consumer shared by all trainer workers (the work-queue stream allows one per subject)."""
    config = ConsumerConfig(
        durable_name=WORKER_CONSUMER,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
        max_ack_pending=1000,
        filter_subject=names.jobs_subject,
        deliver_policy=DeliverPolicy.ALL,
    )
    await js.add_consumer(names.jobs, config)
    return WORKER_CONSUMER


async def ensure_events_consumer(
    js: JetStreamContext, durable: str, names: StreamNames = DEFAULT_STREAM_NAMES
) -> str:
    """Durable pull consumer over every run's events.

    Used by training_run's progress tracker and trained_model's registrar.
    """
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0,
        max_ack_pending=10_000,
        filter_subject=names.events_subject_pattern,
        deliver_policy=DeliverPolicy.ALL,
    )
    await js.add_consumer(names.events, config)
    return durable
