"""Evaluations over NATS on the worker: the job queue (durable pull consumer ``evaluators`` on the jobs
stream: ``jobs.JobQueue`` with ``jobs.EVALUATION_JOBS``) and the evaluation's report publisher
(``raven.evaluations.{id}.events``; started and progress best effort, results durable with
``Nats-Msg-Id = {evaluation_id}:{attempt}:{kind}``, as a run's terminal events are), and the claim a worker
makes before running a job (request/reply on ``raven.evaluations.{id}.claim``, answered by trained_model)."""

from __future__ import annotations

import re

from google.protobuf.timestamp_pb2 import Timestamp
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.js import JetStreamContext

from common.nats_streams import StreamNames
from common.proto.raven.v1 import evaluations_pb2, events_pb2, types_pb2
from services.trainer_worker.adapters.events import SubjectPublisher
from services.trainer_worker.service_layer.ports import (
    ClaimRefused,
    EvaluationClaims,
    EvaluationClaimUnanswered,
)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
VERSION_NAME = re.compile(r"^datasets/([A-Za-z0-9_-]{1,64})/versions/([1-9][0-9]{0,9})$")
SPLITS = ("train", "val", "test")
CLAIM_TIMEOUT_SECONDS = 5.0


class NatsEvaluationClaims(EvaluationClaims):
    """Asks trained_model (``EvaluationClaimResponder``): an ``EvaluationEvent`` with ``started`` out, a
    ``RunControl`` back (``cancel`` set: refused, with the reason)."""

    def __init__(self, nc: NATS, names: StreamNames, timeout: float = CLAIM_TIMEOUT_SECONDS) -> None:
        self._nc = nc
        self._names = names
        self._timeout = timeout

    async def claim(self, evaluation_id: str, attempt: int, worker_id: str) -> None:
        request = evaluations_pb2.EvaluationEvent(evaluation_id=evaluation_id, attempt=attempt)
        request.time.GetCurrentTime()
        request.started.worker_id = worker_id
        subject = self._names.evaluation_claim_subject(evaluation_id)
        try:
            reply = await self._nc.request(subject, request.SerializeToString(), timeout=self._timeout)
            answer = events_pb2.RunControl.FromString(reply.data)
        except NoRespondersError as exc:
            raise EvaluationClaimUnanswered("no trained_model server answers evaluation claims") from exc
        except TimeoutError as exc:
            waited = f"trained_model did not answer within {self._timeout:g} s"
            raise EvaluationClaimUnanswered(waited) from exc
        except Exception as exc:  # a closed connection, garbage back: the cause is logged, not shown
            raise EvaluationClaimUnanswered("the claim could not be sent or its answer read") from exc
        if answer.cancel:
            raise ClaimRefused(answer.reason or "refused")


def parse_job(data: bytes) -> evaluations_pb2.EvaluationJob:
    """The job; ValueError when the payload is not one a worker can work on."""
    job = evaluations_pb2.EvaluationJob()
    try:
        job.ParseFromString(data)
    except Exception as exc:
        raise ValueError(f"payload is not an EvaluationJob: {exc}") from exc
    if not _ID.match(job.evaluation_id):
        raise ValueError(f"job names no evaluation ({job.evaluation_id[:100]!r})")
    if not VERSION_NAME.match(job.dataset_version.name) or job.split not in SPLITS:
        raise ValueError("job names no dataset version split")
    if not job.checkpoint.uri or not job.class_names:
        raise ValueError("job carries no checkpoint or no classes")
    return job


class EvaluationEventPublisher:
    def __init__(self, js: JetStreamContext, names: StreamNames, evaluation_id: str, attempt: int) -> None:
        self._out = SubjectPublisher(js, names.evaluation_events_subject(evaluation_id), evaluation_id)
        self.evaluation_id = evaluation_id
        self.attempt = attempt

    def _event(self) -> evaluations_pb2.EvaluationEvent:
        now = Timestamp()
        now.GetCurrentTime()
        return evaluations_pb2.EvaluationEvent(
            evaluation_id=self.evaluation_id, attempt=self.attempt, time=now
        )

    async def started(self, worker_id: str) -> None:
        event = self._event()
        event.started.worker_id = worker_id
        await self._out.best_effort(event)

    async def progress(self, step: str, done: int = 0, total: int = 0) -> None:
        event = self._event()
        event.progress.step, event.progress.done, event.progress.total = step, done, total
        event.progress.update_time.CopyFrom(event.time)
        await self._out.best_effort(event)

    async def completed(
        self,
        metrics: types_pb2.DetectionMetrics,
        artifacts: list[types_pb2.Artifact],
        inference: evaluations_pb2.EvaluationInference | None = None,
    ) -> None:
        event = self._event()
        event.completed.metrics.CopyFrom(metrics)
        event.completed.artifacts.extend(artifacts)
        if inference is not None:
            event.completed.inference.CopyFrom(inference)
        await self._out.durably(event, f"{self.evaluation_id}:{self.attempt}:completed", "completed")

    async def failed(self, failure: types_pb2.Failure) -> None:
        event = self._event()
        event.failed.failure.CopyFrom(failure)
        await self._out.durably(event, f"{self.evaluation_id}:{self.attempt}:failed", "failed")
