"""Dataset version preparation over NATS: the job queue (durable pull consumer ``dataset-preparers`` on the
jobs stream) and the version's event publisher (``raven.datasets.{id}.versions.{n}.events``).

The queue is ``jobs.JobQueue`` on that consumer (``jobs.DATASET_JOBS``); terminal events are published as
the run events are (``events.SubjectPublisher.durably``: ``Nats-Msg-Id = {dataset_version}:{attempt}:{kind}``,
retried until stored).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext

from common.logging import get_logger
from common.nats_streams import StreamNames
from common.proto.raven.v1 import datasets_pb2, types_pb2
from services.trainer_worker.adapters.events import SubjectPublisher

log = get_logger("trainer_worker.datasets")

VERSION_NAME = re.compile(r"^datasets/([A-Za-z0-9_-]{1,64})/versions/([1-9][0-9]{0,9})$")
PROGRESS_EVERY_SECONDS = 1.0


def parse_job(data: bytes) -> datasets_pb2.DatasetPreparationJob:
    """The job; ValueError when the payload is not one."""
    job = datasets_pb2.DatasetPreparationJob()
    try:
        job.ParseFromString(data)
    except Exception as exc:
        raise ValueError(f"payload is not a DatasetPreparationJob: {exc}") from exc
    if not VERSION_NAME.match(job.dataset_version):
        raise ValueError(f"job names no dataset version ({job.dataset_version[:100]!r})")
    return job


class DatasetEventPublisher:
    """One preparation attempt's DatasetVersionEvents: started and progress best effort, results durable."""

    def __init__(
        self,
        js: JetStreamContext,
        names: StreamNames,
        dataset_version: str,
        attempt: int,
        *,
        progress_every_seconds: float = PROGRESS_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        match = VERSION_NAME.match(dataset_version)
        if match is None:
            raise ValueError(f"not a dataset version name: {dataset_version!r}")
        self._out = SubjectPublisher(
            js, names.dataset_version_events_subject(match[1], int(match[2])), dataset_version
        )
        self.dataset_version = dataset_version
        self.attempt = attempt
        self._every = progress_every_seconds
        self._clock = clock
        self._last: tuple[str, float] = ("", -1e18)
        self.published = self._out.published

    def _event(self) -> datasets_pb2.DatasetVersionEvent:
        now = Timestamp()
        now.GetCurrentTime()
        return datasets_pb2.DatasetVersionEvent(
            dataset_version=self.dataset_version, attempt=self.attempt, time=now
        )

    async def _best_effort(self, event: datasets_pb2.DatasetVersionEvent) -> None:
        await self._out.best_effort(event)

    async def started(self, worker_id: str) -> None:
        event = self._event()
        event.started.worker_id = worker_id
        await self._best_effort(event)

    async def progress(self, step: str, done: int, total: int, *, force: bool = False) -> bool:
        """Publishes at most every ``progress_every_seconds`` within a step; a new step always passes."""
        now = self._clock()
        if not force and step == self._last[0] and now - self._last[1] < self._every:
            return False
        self._last = (step, now)
        event = self._event()
        progress = event.progress.progress
        progress.step = datasets_pb2.DatasetPreparationStep.Value(f"DATASET_PREPARATION_STEP_{step}")
        progress.done, progress.total = done, total
        progress.update_time.CopyFrom(event.time)
        await self._best_effort(event)
        return True

    async def completed(self, payload: datasets_pb2.DatasetPreparationCompleted) -> None:
        event = self._event()
        event.completed.CopyFrom(payload)
        await self._terminal(event, "completed")

    async def failed(self, failure: types_pb2.Failure) -> None:
        event = self._event()
        event.failed.failure.CopyFrom(failure)
        await self._terminal(event, "failed")

    async def _terminal(self, event: datasets_pb2.DatasetVersionEvent, kind: str) -> None:
        msg_id = f"{self.dataset_version}:{self.attempt}:{kind}"
        await self._out.durably(event, msg_id, kind)
