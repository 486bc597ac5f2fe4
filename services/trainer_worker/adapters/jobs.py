"""The job queue: a durable JetStream pull consumer on the work-queue stream, one message per free slot.

One queue for every kind of job (training by size, dataset preparation, evaluation): only the consumer
differs (``JobKind``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from common.dead_letters import DeadLetters
from common.logging import get_logger
from common.nats_streams import (
    DATASET_WORKER_CONSUMER,
    DEFAULT_RETRY,
    EVALUATION_WORKER_CONSUMER,
    RetryPolicy,
    StreamNames,
    ensure_dataset_worker_consumer,
    ensure_evaluation_worker_consumer,
    ensure_streams,
    ensure_worker_consumer,
    worker_consumer,
)
from common.proto.raven.v1 import events_pb2
from services.trainer_worker.service_layer.ports import JobDelivery

log = get_logger("trainer_worker.jobs")

# Redelivery delay after a nak: another worker (or this one, later) picks the job up without a hot loop.
NAK_DELAY_SECONDS = 2.0


class JobMessage(JobDelivery):
    """One delivered job; settled exactly once (ack, nak or term), later calls are no-ops."""

    def __init__(self, msg: Msg, dead_letters: DeadLetters) -> None:
        self._msg = msg
        self._dead_letters = dead_letters
        self.settled: str | None = None

    @property
    def data(self) -> bytes:
        return bytes(self._msg.data)

    @property
    def num_delivered(self) -> int:
        try:
            return int(self._msg.metadata.num_delivered)
        except Exception:
            return 1

    def parse(self) -> events_pb2.TrainingJob:
        """The TrainingJob payload; raises ``ValueError`` when it is not one."""
        job = events_pb2.TrainingJob()
        try:
            job.ParseFromString(self.data)
        except Exception as exc:
            raise ValueError(f"job payload is not a TrainingJob: {exc}") from exc
        if not job.run_id:
            raise ValueError("job payload has no run_id")
        return job

    async def in_progress(self) -> None:
        """Tells JetStream the job is still being worked on, so ack_wait does not redeliver it."""
        if self.settled is None:
            await self._msg.in_progress()

    async def ack(self) -> None:
        """Acks and waits for the server's confirmation: once this returns the job has left the work queue."""
        if self.settled is None:
            await self._msg.ack_sync(timeout=5.0)
            self.settled = "ack"

    async def nak(self, delay: float | None = NAK_DELAY_SECONDS) -> None:
        if self.settled is None:
            await self._msg.nak(delay=delay)
            self.settled = "nak"

    async def term(self) -> None:
        if self.settled is None:
            await self._msg.term()
            self.settled = "term"

    async def fail(self, error: str) -> None:
        """This delivery failed: back to the queue after a backoff, or dead-lettered on its last delivery."""
        if self.settled is None:
            dead = await self._dead_letters.failed(self._msg, error)
            self.settled = "term" if dead else "nak"

    async def reject(self, error: str) -> None:
        """A payload that can never be worked on: dead-lettered at once."""
        if self.settled is None:
            await self._dead_letters.unreadable(self._msg, error)
            self.settled = "term"


@dataclass(frozen=True)
class JobKind:
    """Which jobs a queue takes: its durable consumer on the jobs stream and how that consumer is created
    (``common.nats_streams.ensure_*_worker_consumer``, returning the durable name)."""

    consumer: str
    ensure: Callable[..., Awaitable[str]]


def training_jobs(gpus: int = 1) -> JobKind:
    """Training jobs of runs on ``gpus`` GPUs: each size has its own subject and consumer
    (``common.nats_streams.worker_consumer``)."""
    return JobKind(worker_consumer(gpus), functools.partial(ensure_worker_consumer, gpus=gpus))


DATASET_JOBS = JobKind(DATASET_WORKER_CONSUMER, ensure_dataset_worker_consumer)
EVALUATION_JOBS = JobKind(EVALUATION_WORKER_CONSUMER, ensure_evaluation_worker_consumer)


class JobQueue:
    """Fetches jobs of one kind from their shared durable consumer (created if missing): training jobs of
    runs on ``gpus`` GPUs by default, else ``jobs`` (``DATASET_JOBS``, ``EVALUATION_JOBS``)."""

    def __init__(
        self,
        js: JetStreamContext,
        names: StreamNames,
        *,
        ack_wait: float = 120.0,
        policy: RetryPolicy | None = None,
        gpus: int = 1,
        jobs: JobKind | None = None,
    ) -> None:
        if jobs is not None and gpus != 1:
            raise ValueError("gpus= sizes training jobs; a queue of other jobs takes jobs= alone")
        self.jobs = jobs or training_jobs(gpus)
        self.consumer = self.jobs.consumer
        self._js = js
        self._names = names
        self._ack_wait = ack_wait
        self.dead_letters = DeadLetters(js, names, self.consumer, policy or DEFAULT_RETRY)
        self._sub: JetStreamContext.PullSubscription | None = None

    @property
    def ack_wait(self) -> float:
        return self._ack_wait

    async def start(self, replicas: int = 1) -> None:
        await ensure_streams(self._js, self._names, replicas)
        durable = await self.jobs.ensure(
            self._js, self._names, ack_wait=self._ack_wait, policy=self.dead_letters.policy
        )
        self._sub = await self._js.pull_subscribe_bind(durable=durable, stream=self._names.jobs)

    async def fetch_one(self, wait: float = 1.0) -> JobMessage | None:
        """One job, or None when none arrived within ``wait`` seconds."""
        if self._sub is None:
            raise RuntimeError("JobQueue.start() first")
        try:
            msgs = await self._sub.fetch(batch=1, timeout=wait)
        except (TimeoutError, nats.errors.TimeoutError):
            return None
        except NotFoundError:
            # consumer deleted underneath us (e.g. stream recreated): provision again, try next round
            log.warning("worker consumer missing; recreating")
            await self.start()
            return None
        return JobMessage(msgs[0], self.dead_letters) if msgs else None

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
