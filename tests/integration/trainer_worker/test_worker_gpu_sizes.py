"""Runs of N GPUs go only to workers that take runs of N GPUs: each size has its own JetStream subject and
durable consumer (no polling, no claim-and-refuse), over a real nats-server and lease server. And a real
2-rank gloo training through a worker that takes 2-GPU runs (CPU: 2 processes) ends completed and evaluated.
"""

from __future__ import annotations

import json

import pytest

from common.artifacts import ArtifactStore
from common.mmdet_config import HyperParams, build_config
from common.nats_streams import DATASET_WORKER_CONSUMER, EVALUATION_WORKER_CONSUMER, worker_consumer
from common.proto.raven.v1 import events_pb2, types_pb2
from common.settings import Settings
from services.trainer_worker.adapters.jobs import DATASET_JOBS, JobQueue
from services.trainer_worker.domain.job import Settlement
from services.trainer_worker.service_layer.steps import JobSteps
from tests.integration.trainer_worker.test_worker_harness import (
    FakeRun,
    Harness,
    QuickSteps,
    eventually,
    start_worker,
)
from tests.integration.trainer_worker.test_worker_intake import env  # noqa: F401  (the fixture)
from tests.integration.trainer_worker.test_worker_training import TEMPLATE

pytestmark = pytest.mark.timeout(120)


async def sized_worker(env: dict[str, object], gpus: int, steps: JobSteps | None = None) -> Harness:  # noqa: F811
    base = env["settings"]
    assert isinstance(base, Settings)
    settings = base.model_copy(update={"worker_gpus_per_run": gpus, "worker_id": f"{base.worker_id}-g{gpus}"})
    steps = steps or QuickSteps(
        artifacts=ArtifactStore(settings.artifact_root), dataset_root=settings.dataset_root
    )
    h = await start_worker(settings, env["names"], env["servicer"], steps)  # type: ignore[arg-type]
    env["harnesses"].append(h)  # type: ignore[attr-defined]
    return h


async def publish_sized(h: Harness, job: events_pb2.TrainingJob) -> None:
    """Publishes as training_run's outbox does: on the subject of the job's size."""
    h.servicer.runs.setdefault(job.run_id, FakeRun()).job = job
    subject = h.names.training_jobs_subject(
        job.hyperparameters.gpus if job.hyperparameters.HasField("gpus") else 1
    )
    await h.js.publish(
        subject, job.SerializeToString(), headers={"Nats-Msg-Id": f"{job.run_id}:{job.attempt}"}
    )


def quick_job(run_id: str, gpus: int | None) -> events_pb2.TrainingJob:
    job = events_pb2.TrainingJob(
        run_id=run_id, attempt=1, dataset="good", model_template="fake", owner="alice"
    )
    if gpus is not None:
        job.hyperparameters.gpus = gpus
    job.config.update({"model": {"type": "Fake"}})
    return job


async def test_each_size_of_run_goes_to_the_workers_of_that_size_only(env: dict[str, object]) -> None:  # noqa: F811
    one = await sized_worker(env, 1)
    two = await sized_worker(env, 2)
    for run_id, gpus in (("run-g2-a", 2), ("run-g1", None), ("run-g2-b", 2), ("run-g4", 4)):
        await publish_sized(one, quick_job(run_id, gpus))
    await eventually(lambda: len(one.app.worker.settlements) + len(two.app.worker.settlements) >= 3,
                     what="the 1- and 2-GPU jobs settled")  # fmt: skip

    runs = env["servicer"].runs  # type: ignore[attr-defined]
    assert runs["run-g1"].worker_id == one.settings.worker_id
    assert runs["run-g2-a"].worker_id == runs["run-g2-b"].worker_id == two.settings.worker_id
    assert (
        one.app.worker.settlements == [Settlement.ACK] and two.app.worker.settlements == [Settlement.ACK] * 2
    )
    assert runs["run-g4"].claims == []  # no worker takes 4-GPU runs: it waits in the stream for one
    assert await one.jobs_left() == 1
    two_info = await two.js.consumer_info(two.names.jobs, worker_consumer(2))
    assert two_info.config.filter_subject == two.names.training_jobs_subject(2) != two.names.jobs_subject
    assert two.app.client.info.slots == 1 and two.app.client.info.device_kind == "cpu"
    # what each advertises with its claims and heartbeats (ListWorkers shows it)
    assert (one.app.client.info.gpus_per_run, two.app.client.info.gpus_per_run) == (1, 2)


async def test_consumers_of_every_size_provisioned_by_workers_coexist(env: dict[str, object]) -> None:  # noqa: F811
    """The work-queue stream refuses overlapping consumers: the sizes' filters never overlap, nor those of
    the dataset and evaluation queues every worker also provisions (one ``JobQueue``, their ``JobKind``)."""
    for gpus in (1, 2, 8):
        await sized_worker(env, gpus)
    h = env["harnesses"][0]  # type: ignore[index]
    consumers = {c.name: c.config.filter_subject for c in await h.js.consumers_info(h.names.jobs)}
    assert consumers[worker_consumer(1)] == h.names.jobs_subject
    assert (
        consumers[worker_consumer(2)] == h.names.training_jobs_subject(2) == f"{h.names.jobs_subject}.gpus.2"
    )
    assert consumers[worker_consumer(8)] == h.names.training_jobs_subject(8)
    assert consumers[DATASET_WORKER_CONSUMER] == h.names.dataset_jobs_subject
    assert consumers[EVALUATION_WORKER_CONSUMER] == h.names.evaluation_jobs_subject
    assert len(consumers) == 5
    with pytest.raises(ValueError, match="gpus="):  # a size names training jobs only
        JobQueue(h.js, h.names, gpus=2, jobs=DATASET_JOBS)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_two_gpu_run_trains_on_two_gloo_ranks_through_the_worker(env: dict[str, object]) -> None:  # noqa: F811
    base = env["settings"]
    assert isinstance(base, Settings)
    steps = JobSteps(artifacts=ArtifactStore(base.artifact_root), dataset_root=base.dataset_root,
                     progress_every_iters=1, progress_every_seconds=0.0)  # fmt: skip
    h = await sized_worker(env, 2, steps)
    resolved = build_config(TEMPLATE, [], HyperParams(epochs=1, batch_size=2, image_size=64, val_interval=1))
    job = events_pb2.TrainingJob(run_id="run-2gpu", attempt=1, dataset="good", model_template=TEMPLATE,
                                 owner="alice", config_sha256=resolved.sha256)  # fmt: skip
    job.hyperparameters.gpus = 2
    job.config.update(resolved.data)
    await publish_sized(h, job)
    await eventually(lambda: h.app.worker.settlements, within=540, what="the 2-GPU job settled")

    events = await h.events("run-2gpu")
    assert events[-1].WhichOneof("payload") == "completed", events[-1]
    completed = events[-1].completed
    assert h.app.worker.settlements == [Settlement.ACK]
    assert completed.evaluation.HasField("val") and completed.epochs == 1
    store = ArtifactStore(h.settings.artifact_root)
    by_kind = {a.kind: a for a in completed.artifacts}
    log = store.read_bytes(by_kind[types_pb2.LOG].uri).decode()
    assert "Distributed training: True" in log and "'backend': 'gloo'" in log
    metrics = json.loads(store.read_bytes(by_kind[types_pb2.METRICS].uri))
    assert set(metrics["val"]["per_class_ap"]) == {"bottle", "tire", "bag"}
