"""The one place that wires the trainer worker: settings → NATS, job queue, training_run client, reporter,
checkpoint store, control channel and steps → the service layer's ``Attempts`` → the intake ``Worker``; and
the dataset job queue, version event publisher and artifact store → ``prepare_job`` → the ``DatasetWorker``.

Nothing connects at import time; ``build_worker``'s keyword arguments let tests pass their own steps/client.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from common.artifacts import ArtifactStore
from common.logging import get_logger
from common.nats_streams import RetryPolicy, StreamNames, connect
from common.proto.raven.v1 import training_run_pb2
from common.settings import Settings
from common.tasks import STEP_TIMEOUT_SECONDS, Step, shut_down
from common.tls import ClientTLS
from services.trainer_worker.adapters.checkpoints import CheckpointSync
from services.trainer_worker.adapters.control import NatsControlChannel
from services.trainer_worker.adapters.dataset_jobs import DatasetEventPublisher
from services.trainer_worker.adapters.distributed_launch import device_indices
from services.trainer_worker.adapters.events import RunEventPublisher
from services.trainer_worker.adapters.jobs import DATASET_JOBS, JobQueue
from services.trainer_worker.adapters.tile_cache import TILE_CACHE_DIR
from services.trainer_worker.adapters.training_run_client import TrainingRunClient
from services.trainer_worker.adapters.worker_credential import WorkerCredential, refuse_signing_keys
from services.trainer_worker.domain.job import worker_slots
from services.trainer_worker.entrypoints.dataset_worker import DatasetWorker
from services.trainer_worker.entrypoints.worker import Worker
from services.trainer_worker.evaluation_bootstrap import build_evaluation_worker
from services.trainer_worker.service_layer.attempt import AttemptConfig, Attempts, AttemptServices
from services.trainer_worker.service_layer.dataset_preparation import PreparationServices, prepare_job
from services.trainer_worker.service_layer.steps import JobSteps

log = get_logger("trainer_worker")

SERVICE = "trainer_worker"


def worker_id(settings: Settings) -> str:
    return settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"


# torch is imported only here, when the worker counts its GPUs at start (tests pass ``gpus``): the worker
# process itself never trains, and importing torch costs seconds.
def gpu_count() -> int:
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:
        return 0


def gpu_model() -> str:
    try:
        import torch

        return str(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else ""
    except Exception:
        return ""


def worker_info(devices: list[str], model: str, gpus_per_run: int = 1) -> training_run_pb2.WorkerInfo:
    """What the worker offers: its slots, the distinct GPUs they use (none on CPU), the run size it takes."""
    gpus: set[str] = set()
    for d in devices:
        if d.startswith("cuda"):
            gpus.update([str(i) for i in device_indices(d)] or [d])
    return training_run_pb2.WorkerInfo(
        device_kind="cuda" if gpus else "cpu",
        gpu_model=model if gpus else "",
        gpu_count=len(gpus),
        slots=len(devices),
        gpus_per_run=gpus_per_run,
    )


def slot_devices(device: str, slots: int, gpus: int, per_run: int = 1) -> list[str]:
    """One device per slot: ``auto`` means the GPUs when there are any (round robin), else the CPU.

    A worker taking runs of ``per_run`` > 1 GPUs gives each slot that many (``cuda:0,1``: its ranks' GPUs);
    on CPU a slot is ``cpu`` and its run starts ``per_run`` gloo processes.
    """
    if device == "auto":
        device = "cuda" if gpus else "cpu"
    if per_run > 1 and device.startswith("cuda"):
        if device != "cuda" or gpus < per_run:
            raise ValueError(
                f"a worker taking runs of {per_run} GPUs needs device cuda and at least {per_run} GPUs; "
                f"it has {device!r} with {gpus} visible"
            )
        groups = gpus // per_run
        n = worker_slots(slots, groups)
        return ["cuda:" + ",".join(str((i % groups) * per_run + j) for j in range(per_run)) for i in range(n)]
    n = worker_slots(slots, gpus if device == "cuda" else 0)
    if device == "cuda":
        return [f"cuda:{i % max(1, gpus)}" for i in range(n)]
    return [device] * n


@dataclass
class WorkerApp:
    settings: Settings
    nc: NATS
    queue: JobQueue
    client: TrainingRunClient
    worker: Worker
    datasets: DatasetWorker  # dataset version preparation, beside the training slots
    evaluations: DatasetWorker | None = None  # evaluation jobs, one at a time beside the training slots

    async def close(self, step_timeout: float = STEP_TIMEOUT_SECONDS) -> None:
        """Close the job subscription, the training_run channel and NATS; each step bounded
        (``common.tasks``). The jobs were settled before (``Worker.shutdown``)."""
        steps = [
            Step("job subscription", self.queue.close),
            Step("training_run client", self.client.close),
            Step("nats", self._close_nats),
        ]
        await shut_down(SERVICE, steps, step_timeout)

    async def _close_nats(self) -> None:
        if self.nc.is_closed:
            return
        try:
            await self.nc.drain()  # the last acks and naks go out
        except Exception:
            await self.nc.close()


async def build_worker(
    settings: Settings,
    *,
    steps: JobSteps | None = None,
    client: TrainingRunClient | None = None,
    ack_wait: float = 120.0,
    fetch_timeout: float = 1.0,
    checkpoint_poll_seconds: float = 2.0,
    gpus: int | None = None,
) -> WorkerApp:
    """Connects to NATS, provisions the streams and the durable consumer, and builds a ready ``Worker``.

    Raises ``WorkerCredentialError`` before connecting to anything when the worker holds the signing key or
    has no usable worker token.
    """
    refuse_signing_keys(settings)
    wid = worker_id(settings)
    if client is None:
        credential = WorkerCredential.from_settings(settings)
        client = TrainingRunClient(
            settings.training_run_addr, credential, wid, tls=ClientTLS.from_settings(settings)
        )
    names = StreamNames.from_settings(settings)
    nc = await connect(settings.nats_url, name=f"trainer-worker-{wid}")
    js = nc.jetstream()
    queue = JobQueue(
        js, names, ack_wait=ack_wait, policy=RetryPolicy.from_settings(settings, jobs=True),
        gpus=settings.worker_gpus_per_run,
    )  # fmt: skip
    await queue.start(settings.stream_replicas)
    artifacts = ArtifactStore(settings.artifact_root)
    steps = steps or JobSteps(
        artifacts=artifacts,
        dataset_root=settings.dataset_root,
        cancel_grace_seconds=settings.cancel_grace_seconds,
        preemption_grace_seconds=settings.preemption_grace_seconds,
        progress_every_iters=settings.progress_every_iters,
        progress_every_seconds=settings.progress_every_seconds,
        tile_cache=Path(settings.work_dir) / TILE_CACHE_DIR,
        tile_cache_max_bytes=settings.tile_cache_max_bytes,
    )

    def publisher(run_id: str, attempt: int) -> RunEventPublisher:
        return RunEventPublisher(
            js,
            names,
            run_id,
            attempt,
            progress_every_iters=settings.progress_every_iters,
            progress_every_seconds=settings.progress_every_seconds,
        )

    def checkpoints(run_id: str, attempt: int) -> CheckpointSync:
        return CheckpointSync(artifacts, run_id, attempt)

    attempts = Attempts(
        AttemptServices(
            run_service=client,
            control=NatsControlChannel(nc, names),
            steps=steps,
            reporter_for=publisher,
            checkpoints_for=checkpoints,
            config=AttemptConfig(
                worker_id=wid,
                work_root=Path(settings.work_dir).resolve(),
                ack_wait=ack_wait,
                checkpoint_poll_seconds=checkpoint_poll_seconds,
            ),
        )
    )
    datasets = await build_dataset_worker(settings, js, names, artifacts, wid, ack_wait, fetch_timeout)
    gpus = gpu_count() if gpus is None else gpus
    devices = slot_devices(settings.device, settings.worker_slots, gpus, settings.worker_gpus_per_run)
    evaluations = await build_evaluation_worker(
        settings, nc, js, names, artifacts, wid, ack_wait, fetch_timeout, devices[0]
    )
    client.info = worker_info(
        devices,
        gpu_model() if any(d.startswith("cuda") for d in devices) else "",
        settings.worker_gpus_per_run,
    )
    worker = Worker(
        queue=queue,
        attempts=attempts,
        devices=devices,
        fetch_timeout=fetch_timeout,
        announce=client.heartbeat_worker,
        announce_seconds=settings.heartbeat_seconds,
        # SIGTERM: stop asked, the child killed after the preemption grace, then upload, release and nak
        settle_seconds=settings.preemption_grace_seconds + 3 * STEP_TIMEOUT_SECONDS,
    )
    log.info(
        "worker built",
        worker_id=wid,
        devices=devices,
        nats=settings.nats_url,
        training_run=settings.training_run_addr,
    )
    return WorkerApp(
        settings=settings, nc=nc, queue=queue, client=client, worker=worker, datasets=datasets,
        evaluations=evaluations,
    )  # fmt: skip


async def build_dataset_worker(
    settings: Settings,
    js: JetStreamContext,
    names: StreamNames,
    artifacts: ArtifactStore,
    wid: str,
    ack_wait: float,
    fetch_timeout: float,
) -> DatasetWorker:
    """The dataset preparation intake: its own durable consumer on the jobs stream, results on the version's
    event subject; it closes its subscription when it stops."""
    policy = RetryPolicy.from_settings(settings, jobs=True)
    queue = JobQueue(js, names, ack_wait=ack_wait, policy=policy, jobs=DATASET_JOBS)
    await queue.start(settings.stream_replicas)
    stopping = asyncio.Event()

    def publisher(version: str, attempt: int) -> DatasetEventPublisher:
        return DatasetEventPublisher(js, names, version, attempt)

    services = PreparationServices(artifacts, publisher, wid, ack_wait, policy, stopping)
    return DatasetWorker(
        queue=queue,
        handle=functools.partial(prepare_job, services=services),
        stopping=stopping,
        fetch_timeout=fetch_timeout,
    )
