"""Wiring of the worker's evaluation intake, called by ``bootstrap.build_worker`` (kept apart so the
bootstrap stays readable): its own durable consumer on the jobs stream, a claim of trained_model before each
job, reports on the evaluation's event subject, cancel requests on its control subject; one evaluation at a
time, beside the training slots."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from common.artifacts import ArtifactStore
from common.nats_streams import RetryPolicy, StreamNames
from common.settings import Settings
from services.trainer_worker.adapters.control import NatsControlChannel
from services.trainer_worker.adapters.evaluation_jobs import EvaluationEventPublisher, NatsEvaluationClaims
from services.trainer_worker.adapters.jobs import EVALUATION_JOBS, JobQueue
from services.trainer_worker.entrypoints.dataset_worker import DatasetWorker
from services.trainer_worker.service_layer.evaluation_job import EvaluationServices, evaluate_job


async def build_evaluation_worker(
    settings: Settings,
    nc: NATS,
    js: JetStreamContext,
    names: StreamNames,
    artifacts: ArtifactStore,
    wid: str,
    ack_wait: float,
    fetch_timeout: float,
    device: str,
) -> DatasetWorker:
    """``device``: the worker's first slot's (an evaluation runs beside training, on the same device)."""
    policy = RetryPolicy.from_settings(settings, jobs=True)
    queue = JobQueue(js, names, ack_wait=ack_wait, policy=policy, jobs=EVALUATION_JOBS)
    await queue.start(settings.stream_replicas)
    stopping = asyncio.Event()

    def publisher(evaluation_id: str, attempt: int) -> EvaluationEventPublisher:
        return EvaluationEventPublisher(js, names, evaluation_id, attempt)

    services = EvaluationServices(
        store=artifacts,
        publisher_for=publisher,
        control=NatsControlChannel(nc, names),
        claims=NatsEvaluationClaims(nc, names),
        worker_id=wid,
        work_root=Path(settings.work_dir),
        device=device.split(",")[0],  # one GPU of a multi-GPU slot ("cuda:0,1")
        ack_wait=ack_wait,
        retry=policy,
        stopping=stopping,
    )
    return DatasetWorker(
        queue=queue,
        handle=functools.partial(evaluate_job, services=services),
        stopping=stopping,
        fetch_timeout=fetch_timeout,
        what="evaluation",
    )
