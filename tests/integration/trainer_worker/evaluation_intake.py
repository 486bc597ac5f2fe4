"""The worker's real evaluation intake on the test's loop (``JobQueue`` on ``EVALUATION_JOBS``,
``evaluate_job``, the real event publisher and control channel), one job taken off that queue by hand, and
the evaluation events published. Shared by the worker's evaluation job tests and trained_model's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from nats.js import JetStreamContext

from common.artifacts import ArtifactStore
from common.nats_streams import DEFAULT_RETRY, StreamNames
from common.proto.raven.v1 import evaluations_pb2
from services.trainer_worker.adapters.control import NatsControlChannel
from services.trainer_worker.adapters.evaluation_jobs import EvaluationEventPublisher
from services.trainer_worker.adapters.jobs import EVALUATION_JOBS, JobMessage, JobQueue
from services.trainer_worker.entrypoints.dataset_worker import DatasetWorker
from services.trainer_worker.service_layer.evaluation_job import EvaluationServices, evaluate_job
from services.trainer_worker.service_layer.ports import EvaluationClaims


@asynccontextmanager
async def one_job(js: JetStreamContext, names: StreamNames, wait: float = 5.0) -> AsyncIterator[JobMessage]:
    """The next evaluation job on the queue, as a worker fetches it (the caller settles it); the queue's
    subscription is closed on the way out."""
    queue = JobQueue(js, names, ack_wait=30.0, jobs=EVALUATION_JOBS)
    await queue.start()
    try:
        msg = await queue.fetch_one(wait)
        assert msg is not None, f"no evaluation job within {wait} s"
        yield msg
    finally:
        await queue.close()


async def run_intake(
    js: JetStreamContext,
    names: StreamNames,
    store: ArtifactStore,
    work: Path,
    expect: int,
    claims: EvaluationClaims,
) -> DatasetWorker:
    """Runs the intake (on CPU, work dirs under ``work``) until it has settled ``expect`` jobs (30 s at most),
    then stops it; its ``settlements`` tell how each job left the queue."""
    queue = JobQueue(js, names, ack_wait=30.0, jobs=EVALUATION_JOBS)
    await queue.start()
    stopping = asyncio.Event()
    services = EvaluationServices(
        store=store, publisher_for=lambda e, a: EvaluationEventPublisher(js, names, e, a),
        control=NatsControlChannel(js._nc, names), claims=claims, worker_id="w-eval", work_root=work,
        device="cpu",
        ack_wait=30.0, retry=DEFAULT_RETRY, stopping=stopping,
    )  # fmt: skip
    intake = DatasetWorker(
        queue=queue, handle=lambda msg: evaluate_job(msg, services), stopping=stopping, fetch_timeout=0.2,
        what="evaluation",
    )  # fmt: skip
    running = asyncio.create_task(intake.run())
    deadline = asyncio.get_running_loop().time() + 30
    while len(intake.settlements) < expect:
        assert asyncio.get_running_loop().time() < deadline, intake.settlements
        await asyncio.sleep(0.05)
    await intake.shutdown()
    await running
    return intake


async def events_of(
    js: JetStreamContext, names: StreamNames, evaluation_id: str
) -> list[evaluations_pb2.EvaluationEvent]:
    """Every event stored on the evaluation's subject so far."""
    sub = await js.subscribe(names.evaluation_events_subject(evaluation_id), ordered_consumer=True)
    found = []
    try:
        while True:
            found.append(evaluations_pb2.EvaluationEvent.FromString((await sub.next_msg(timeout=0.5)).data))
    except Exception:
        pass
    finally:
        await sub.unsubscribe()
    return found
