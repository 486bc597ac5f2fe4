"""The one place that wires the trainer worker: settings → NATS, job queue, training_run client, steps.

Nothing connects at import time; ``build_worker``'s keyword arguments let tests pass their own steps/client.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client as NATS

from common.artifacts import ArtifactStore
from common.logging import get_logger
from common.nats_streams import StreamNames, connect
from common.settings import Settings
from services.trainer_worker.adapters.checkpoints import CheckpointSync
from services.trainer_worker.adapters.events import RunEventPublisher
from services.trainer_worker.adapters.jobs import JobQueue
from services.trainer_worker.adapters.training_run_client import TrainingRunClient, WorkerToken
from services.trainer_worker.domain.job import worker_slots
from services.trainer_worker.entrypoints.job_runner import JobRunner, RunnerConfig
from services.trainer_worker.entrypoints.steps import JobSteps
from services.trainer_worker.entrypoints.worker import Worker

log = get_logger("trainer_worker")


def worker_id(settings: Settings) -> str:
    return settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"


def gpu_count() -> int:
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:
        return 0


def slot_devices(device: str, slots: int, gpus: int) -> list[str]:
    """One device per slot: ``auto`` means the GPUs when there are any (round robin), else the CPU."""
    if device == "auto":
        device = "cuda" if gpus else "cpu"
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

    async def close(self) -> None:
        await self.queue.close()
        await self.client.close()
        await self.nc.drain()


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
    """Connects to NATS, provisions the streams and the durable consumer, and builds a ready ``Worker``."""
    wid = worker_id(settings)
    names = StreamNames.from_settings(settings)
    nc = await connect(settings.nats_url, name=f"trainer-worker-{wid}")
    js = nc.jetstream()
    queue = JobQueue(js, names, ack_wait=ack_wait)
    await queue.start(settings.stream_replicas)
    artifacts = ArtifactStore(settings.artifact_root)
    if client is None:
        token = WorkerToken(
            wid,
            secret=settings.jwt_secret,
            private_key=settings.jwt_private_key,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )
        client = TrainingRunClient(settings.training_run_addr, token, wid)
    steps = steps or JobSteps(
        artifacts=artifacts,
        dataset_root=settings.dataset_root,
        cancel_grace_seconds=settings.cancel_grace_seconds,
        progress_every_iters=settings.progress_every_iters,
        progress_every_seconds=settings.progress_every_seconds,
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

    runner = JobRunner(
        client=client,
        nc=nc,
        names=names,
        steps=steps,
        publisher_factory=publisher,
        checkpoints_factory=checkpoints,
        config=RunnerConfig(
            worker_id=wid,
            work_root=Path(settings.work_dir),
            ack_wait=ack_wait,
            checkpoint_poll_seconds=checkpoint_poll_seconds,
        ),
    )
    devices = slot_devices(settings.device, settings.worker_slots, gpu_count() if gpus is None else gpus)
    worker = Worker(queue=queue, runner=runner, devices=devices, fetch_timeout=fetch_timeout)
    log.info(
        "worker built",
        worker_id=wid,
        devices=devices,
        nats=settings.nats_url,
        training_run=settings.training_run_addr,
    )
    return WorkerApp(settings=settings, nc=nc, queue=queue, client=client, worker=worker)
