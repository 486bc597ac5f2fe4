"""JetStream subjects, idempotent stream/consumer provisioning and connection helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
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
from common.tasks import raise_if_cancelling

log = get_logger("nats")

WORKER_CONSUMER = "trainer-workers"
DATASET_WORKER_CONSUMER = "dataset-preparers"
EVALUATION_WORKER_CONSUMER = "evaluators"
MAX_DELIVERIES_ADVISORY = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
DEAD_LETTER_MAX_AGE_SECONDS = 30 * 24 * 3600.0
FETCH_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often a consumer gets a message before it is dead-lettered, and how long it waits in between.

    ``backoff`` are the nak delays after a failed delivery (the last one repeats). A delivery that gets no
    answer at all (its consumer crashed or hung) comes back after the consumer's ack wait, and past
    ``max_deliver`` JetStream emits a MAX_DELIVERIES advisory instead.

    The schedule is applied by the consumer's nak, not by JetStream's own ``backoff`` consumer option: that
    option replaces the ack wait with its first step (a worker's in-progress pings would no longer keep a
    long job), and nats-server measures a nak delay against the ack wait but redelivers on the backoff step,
    so a 50 ms nak on the second delivery waited the whole second step (seen on nats-server 2.12.1).
    """

    max_deliver: int = 10
    backoff: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

    def __post_init__(self) -> None:
        if self.max_deliver < 2 or not self.backoff or min(self.backoff) < 0:
            raise ValueError("max_deliver must be >= 2 and backoff a non-empty list of delays >= 0")

    @classmethod
    def from_settings(cls, settings: Any, *, jobs: bool = False) -> RetryPolicy:
        max_deliver = settings.worker_max_deliver if jobs else settings.consumer_max_deliver
        return cls(max_deliver=max_deliver, backoff=tuple(settings.retry_backoff_seconds))

    def nak_delay(self, delivered: int) -> float:
        return self.backoff[min(max(delivered, 1), len(self.backoff)) - 1]

    def exhausted(self, delivered: int) -> bool:
        """True on the last delivery JetStream will make: the message must be dead-lettered, not nak'ed."""
        return delivered >= self.max_deliver


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class StreamNames:
    """Stream names and subject prefix; tests use unique ones to stay isolated on a shared server."""

    jobs: str = "RAVEN_JOBS"
    events: str = "RAVEN_RUN_EVENTS"
    prefix: str = "raven"
    dead_letters: str = ""  # default: "{PREFIX}_DEAD_LETTERS", so tests with their own prefix stay apart

    @classmethod
    def from_settings(cls, settings: Any) -> StreamNames:
        return cls(
            jobs=settings.jobs_stream,
            events=settings.events_stream,
            prefix=settings.subject_prefix,
            dead_letters=settings.dead_letters_stream,
        )

    @property
    def dead_letters_stream(self) -> str:
        return self.dead_letters or f"{self.prefix.upper()}_DEAD_LETTERS"

    def dead_letter_subject(self, consumer: str) -> str:
        return f"{self.prefix}.deadletter.{consumer}"

    @property
    def max_deliveries_advisories(self) -> list[str]:
        """JetStream's advisories for messages that reached max_deliver unanswered, on our two streams."""
        return [f"{MAX_DELIVERIES_ADVISORY}.{stream}.*" for stream in (self.jobs, self.events)]

    @property
    def jobs_subject(self) -> str:
        return f"{self.prefix}.jobs.training"

    def training_jobs_subject(self, gpus: int = 1) -> str:
        """The queue of training jobs of one size: 1 GPU on ``jobs_subject`` (as before sizes existed), N on
        ``<jobs_subject>.gpus.N``. Non-overlapping subjects, so each size has its own work-queue consumer."""
        return self.jobs_subject if gpus <= 1 else f"{self.jobs_subject}.gpus.{gpus}"

    def is_training_jobs_subject(self, subject: str) -> bool:
        size = subject.removeprefix(f"{self.jobs_subject}.gpus.")
        return subject == self.jobs_subject or (size != subject and size.isdigit())

    @property
    def events_subject_pattern(self) -> str:
        return f"{self.prefix}.runs.*.events"

    def run_events_subject(self, run_id: str) -> str:
        return f"{self.prefix}.runs.{run_id}.events"

    @property
    def dataset_jobs_subject(self) -> str:
        """Dataset version preparation jobs (DatasetPreparationJob), on the jobs stream."""
        return f"{self.prefix}.jobs.dataset_preparation"

    @property
    def dataset_events_subject_pattern(self) -> str:
        return f"{self.prefix}.datasets.*.versions.*.events"

    def dataset_version_events_subject(self, dataset_id: str, version_number: int) -> str:
        """Subject of one version's DatasetVersionEvents ("datasets/{id}/versions/{n}")."""
        return f"{self.prefix}.datasets.{dataset_id}.versions.{version_number}.events"

    def run_control_subject(self, run_id: str) -> str:
        return f"{self.prefix}.control.{run_id}"

    @property
    def evaluation_jobs_subject(self) -> str:
        """Evaluation jobs (EvaluationJob), on the jobs stream."""
        return f"{self.prefix}.jobs.evaluation"

    @property
    def evaluation_events_subject_pattern(self) -> str:
        return f"{self.prefix}.evaluations.*.events"

    def evaluation_events_subject(self, evaluation_id: str) -> str:
        """Subject of one evaluation's EvaluationEvents ("evaluations/{id}")."""
        return f"{self.prefix}.evaluations.{evaluation_id}.events"

    def evaluation_claim_subject(self, evaluation_id: str) -> str:
        """Where a worker claims one evaluation before running its job (core NATS request/reply, no stream;
        trained_model answers ``"*"``: every evaluation's claim)."""
        return f"{self.prefix}.evaluations.{evaluation_id}.claim"


DEFAULT_STREAM_NAMES = StreamNames()


def worker_consumer(gpus: int = 1) -> str:
    """The durable consumer of training jobs of one size, shared by the workers that take that size."""
    return WORKER_CONSUMER if gpus <= 1 else f"{WORKER_CONSUMER}-gpus-{gpus}"


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
    """Create or update the jobs, dead-letter and events streams (safe from every process at every start)."""
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
            name=names.dead_letters_stream,
            subjects=[f"{names.prefix}.deadletter.>", *names.max_deliveries_advisories],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=DEAD_LETTER_MAX_AGE_SECONDS,
            duplicate_window=600.0,
            num_replicas=replicas,
        ),
    )
    await _ensure_stream(
        js,
        StreamConfig(
            name=names.events,
            subjects=[
                names.events_subject_pattern,
                names.dataset_events_subject_pattern,
                names.evaluation_events_subject_pattern,
            ],
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
    policy: RetryPolicy = DEFAULT_RETRY,
    gpus: int = 1,
) -> str:
    """Durable pull consumer shared by the trainer workers that take runs of ``gpus`` GPUs (the work-queue
    stream allows one consumer per subject: one per size)."""
    durable = worker_consumer(gpus)
    await _ensure_consumer(js, names.jobs, durable, names.training_jobs_subject(gpus), ack_wait, policy, 1000)
    return durable


async def ensure_dataset_worker_consumer(
    js: JetStreamContext,
    names: StreamNames = DEFAULT_STREAM_NAMES,
    ack_wait: float = 120.0,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> str:
    """Durable pull consumer of dataset preparation jobs, shared by all workers."""
    await _ensure_consumer(
        js, names.jobs, DATASET_WORKER_CONSUMER, names.dataset_jobs_subject, ack_wait, policy, 1000
    )
    return DATASET_WORKER_CONSUMER


async def ensure_evaluation_worker_consumer(
    js: JetStreamContext,
    names: StreamNames = DEFAULT_STREAM_NAMES,
    ack_wait: float = 120.0,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> str:
    """Durable pull consumer of evaluation jobs, shared by all workers."""
    subject = names.evaluation_jobs_subject
    await _ensure_consumer(js, names.jobs, EVALUATION_WORKER_CONSUMER, subject, ack_wait, policy, 1000)
    return EVALUATION_WORKER_CONSUMER


async def ensure_evaluation_events_consumer(
    js: JetStreamContext,
    durable: str,
    names: StreamNames = DEFAULT_STREAM_NAMES,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> str:
    """Durable pull consumer over every evaluation's events (trained_model's evaluation tracker)."""
    pattern = names.evaluation_events_subject_pattern
    await _ensure_consumer(js, names.events, durable, pattern, 30.0, policy, 10_000)
    return durable


async def ensure_dataset_events_consumer(
    js: JetStreamContext,
    durable: str,
    names: StreamNames = DEFAULT_STREAM_NAMES,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> str:
    """Durable pull consumer over every dataset version's events (training_run's dataset tracker)."""
    pattern = names.dataset_events_subject_pattern
    await _ensure_consumer(js, names.events, durable, pattern, 30.0, policy, 10_000)
    return durable


async def ensure_events_consumer(
    js: JetStreamContext,
    durable: str,
    names: StreamNames = DEFAULT_STREAM_NAMES,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> str:
    """Durable pull consumer over every run's events.

    Used by training_run's progress tracker and trained_model's registrar.
    """
    await _ensure_consumer(js, names.events, durable, names.events_subject_pattern, 30.0, policy, 10_000)
    return durable


async def ensure_dead_letters_consumer(
    js: JetStreamContext,
    durable: str,
    names: StreamNames = DEFAULT_STREAM_NAMES,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> str:
    """Durable pull consumer over the dead-letter stream (records and MAX_DELIVERIES advisories)."""
    await _ensure_consumer(js, names.dead_letters_stream, durable, None, 30.0, policy, 1000)
    return durable


async def _ensure_consumer(
    js: JetStreamContext,
    stream: str,
    durable: str,
    filter_subject: str | None,
    ack_wait: float,
    policy: RetryPolicy,
    max_ack_pending: int,
) -> None:
    """Creates the durable consumer, or updates an existing one in place (max_deliver, ack_wait)."""
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=policy.max_deliver,
        max_ack_pending=max_ack_pending,
        filter_subject=filter_subject,
        deliver_policy=DeliverPolicy.ALL,
    )
    await js.add_consumer(stream, config)


async def consume_batches(
    subscription: JetStreamContext.PullSubscription,
    handle: Callable[[list[Msg]], Awaitable[object]],
    *,
    batch: int,
    logger: structlog.stdlib.BoundLogger,
    failure: str,
    retry_delay: float,
    quiet: tuple[type[Exception], ...] = (),
) -> None:
    """The pull loop of a durable consumer, until cancelled: fetch up to ``batch`` messages (waiting
    ``FETCH_WAIT_SECONDS``) and ``await handle(messages)``; a wait that brought none fetches again at once.

    A failed fetch is logged with its traceback under ``failure`` (a ``quiet`` error, e.g. a reconnecting
    connection, is not) and tried again after ``retry_delay`` seconds. Only a connection closed for good ends
    the loop: nats-py turns a cancellation that meets a closed connection into ``ConnectionClosedError``,
    and retrying that would swallow the cancel and spin forever (a task that never stops).
    """
    while True:
        raise_if_cancelling()  # a cancel lost inside the fetch (common.tasks.cancel_and_wait) ends it here
        try:
            messages = await subscription.fetch(batch, timeout=FETCH_WAIT_SECONDS)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        except nats.errors.ConnectionClosedError:
            raise_if_cancelling()
            logger.warning("connection closed; consumer stopped", failure=failure)
            return
        except quiet:
            raise_if_cancelling()
            await asyncio.sleep(retry_delay)
            continue
        except Exception:
            raise_if_cancelling()
            logger.exception(failure)
            await asyncio.sleep(retry_delay)
            continue
        await handle(messages)
