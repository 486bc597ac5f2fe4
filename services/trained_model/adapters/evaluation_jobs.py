"""Evaluation jobs into the JetStream work queue (``raven.jobs.evaluation``, ``Nats-Msg-Id =
{evaluation_id}:job``, so a relay's republication is stored once) and cancel requests on the evaluation's
control subject (``raven.control.{evaluation_id}``, the subject a worker's control channel listens on)."""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from common.nats_streams import StreamNames
from common.proto.raven.v1 import events_pb2
from services.trained_model.adapters.dataset_versions import ResolvedVersion
from services.trained_model.domain.evaluation import Evaluation
from services.trained_model.domain.model import TrainedModel
from services.trained_model.entrypoints.evaluation_convert import evaluation_job
from services.trained_model.service_layer.evaluations import EvaluationJobs

PUBLISH_TIMEOUT_SECONDS = 5.0


def job_msg_id(evaluation_id: str) -> str:
    return f"{evaluation_id}:job"


class NatsEvaluationJobs(EvaluationJobs):
    def __init__(self, nc: NATS, js: JetStreamContext, names: StreamNames) -> None:
        self._nc = nc
        self._js = js
        self._names = names

    async def publish(self, evaluation: Evaluation, model: TrainedModel, version: ResolvedVersion) -> None:
        job = evaluation_job(evaluation, model, version)
        await self._js.publish(
            self._names.evaluation_jobs_subject,
            job.SerializeToString(),
            headers={"Nats-Msg-Id": job_msg_id(evaluation.id)},
            timeout=PUBLISH_TIMEOUT_SECONDS,
        )

    async def cancel(self, evaluation: Evaluation, reason: str) -> None:
        message = events_pb2.RunControl(run_id=evaluation.id, attempt=0, cancel=True, reason=reason)
        await self._nc.publish(self._names.run_control_subject(evaluation.id), message.SerializeToString())
