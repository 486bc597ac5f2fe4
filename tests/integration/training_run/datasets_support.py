"""Helpers of the DatasetService tests: a COCO directory on disk, a stub, the worker's side of the events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import nats.errors
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from common.artifacts import ArtifactStore
from common.auth import USER_PERMISSIONS, Permission
from common.nats_streams import DEFAULT_RETRY, StreamNames
from common.proto.raven.v1 import datasets_pb2 as pb
from common.proto.raven.v1 import datasets_pb2_grpc
from services.trainer_worker.adapters.dataset_jobs import DatasetEventPublisher
from services.trainer_worker.adapters.jobs import DATASET_JOBS, JobQueue
from services.trainer_worker.entrypoints.dataset_worker import DatasetWorker
from services.trainer_worker.service_layer.dataset_preparation import PreparationServices, prepare_job
from tests.helpers import bearer, token
from tests.integration.training_run.conftest import Harness

ALICE = bearer(token("alice"))
BOB = bearer(token("bob", USER_PERMISSIONS - {Permission.VIEW_ALL_DATASETS}))
CAROL_SEES_ALL = bearer(token("carol"))  # datasets.view_all, but owns nothing


def write_coco(directory: Path, images: int = 3, seed: int = 0) -> Path:
    """A tiny COCO dataset (images are opaque bytes here: the server only pins files; workers decode)."""
    (directory / "img").mkdir(parents=True, exist_ok=True)
    entries, annotations = [], []
    for i in range(images):
        (directory / "img" / f"frame {i}.jpg").write_bytes(f"image {seed}-{i}".encode() * 50)
        entries.append({"id": i + 1, "file_name": f"img/frame {i}.jpg", "width": 64, "height": 48})
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [1, 1, 10, 10]})
    coco = {"images": entries, "annotations": annotations, "categories": [{"id": 1, "name": "tire"}]}
    (directory / "annotations.json").write_text(json.dumps(coco))
    return directory


def dataset_root(h: Harness) -> Path:
    return Path(h.app.settings.dataset_root.removeprefix("file://"))


def uri(h: Harness, relative: str) -> str:
    return f"{h.app.settings.dataset_root}/{relative}"


@dataclass
class Datasets:
    h: Harness
    stub: datasets_pb2_grpc.DatasetServiceStub

    @classmethod
    def of(cls, h: Harness) -> Datasets:
        return cls(h, datasets_pb2_grpc.DatasetServiceStub(h.channel))

    async def create(self, name: str = "drone flights", metadata: Any = ALICE, **kw: Any) -> pb.Dataset:
        request = pb.CreateDatasetRequest(dataset=pb.Dataset(display_name=name), **kw)
        return await self.stub.CreateDataset(request, metadata=metadata)

    async def version(self, parent: str, source: str, metadata: Any = ALICE, **kw: Any) -> pb.DatasetVersion:
        split = kw.pop("split_options", None)
        version = pb.DatasetVersion(source_uri=source, split_options=split)
        request = pb.CreateDatasetVersionRequest(parent=parent, dataset_version=version, **kw)
        return await self.stub.CreateDatasetVersion(request, metadata=metadata)

    async def get_version(self, name: str, metadata: Any = ALICE) -> pb.DatasetVersion:
        return await self.stub.GetDatasetVersion(pb.GetDatasetVersionRequest(name=name), metadata=metadata)

    async def report(self, version: pb.DatasetVersion, **payload: Any) -> int:
        """Publish a worker event for ``version`` as the trainer worker does."""
        dataset_id, number = version.name.split("/")[1], version.version_number
        event = pb.DatasetVersionEvent(dataset_version=version.name, attempt=1, **payload)
        event.time.GetCurrentTime()
        subject = self.h.names.dataset_version_events_subject(dataset_id, number)
        return int((await self.h.nc.jetstream().publish(subject, event.SerializeToString())).seq)

    async def wait_state(self, name: str, state: int, timeout: float = 10.0) -> pb.DatasetVersion:  # noqa: ASYNC109
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            version = await self.get_version(name)
            if version.state == state:
                return version
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"state {state} not reached: {version}")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def preparing_worker(h: Harness, worker_id: str = "w-e2e") -> AsyncIterator[ArtifactStore]:
    """The trainer worker's real preparation intake on this loop: versions queued meanwhile get prepared."""
    async with preparation_intake(h.nc, h.names, h.app.settings.artifact_root, worker_id) as store:
        yield store


@asynccontextmanager
async def preparation_intake(
    nc: Any, names: StreamNames, artifact_root: str, worker_id: str
) -> AsyncIterator[ArtifactStore]:
    """The trainer worker's real preparation intake (job queue, ``prepare_job``, event publisher) on the
    running loop, for any stack that shares ``nc``'s server and ``names``."""
    js = nc.jetstream()
    store = ArtifactStore(artifact_root)
    queue = JobQueue(js, names, ack_wait=30.0, jobs=DATASET_JOBS)
    await queue.start()
    stopping = asyncio.Event()
    services = PreparationServices(
        store=store,
        publisher_for=lambda v, a: DatasetEventPublisher(js, names, v, a, progress_every_seconds=0.0),
        worker_id=worker_id,
        ack_wait=30.0,
        retry=DEFAULT_RETRY,
        stopping=stopping,
    )
    worker = DatasetWorker(
        queue=queue, handle=lambda msg: prepare_job(msg, services), stopping=stopping, fetch_timeout=0.2
    )
    running = asyncio.create_task(worker.run())
    try:
        yield store
    finally:
        await worker.shutdown()
        await running
        await queue.close()


async def pull_preparation_jobs(
    h: Harness,
    expect: int,
    timeout: float = 3.0,  # noqa: ASYNC109  (a collection window, not a cancellation deadline)
) -> list[pb.DatasetPreparationJob]:
    js = h.nc.jetstream()
    sub = await js.pull_subscribe(h.names.dataset_jobs_subject, durable="test-preparer", stream=h.names.jobs)
    jobs: list[pb.DatasetPreparationJob] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            messages = await sub.fetch(10, timeout=0.3)
        except (TimeoutError, nats.errors.TimeoutError):
            if len(jobs) >= expect:
                break
            continue
        for message in messages:
            jobs.append(pb.DatasetPreparationJob.FromString(message.data))
            await message.ack()
    await sub.unsubscribe()
    return jobs


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status: {error.details()}"
    found: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def readable(error: grpc.aio.AioRpcError, root: Path) -> str:
    """The message, asserted to hold no server path and no Python internals."""
    text = error.details() or ""
    for marker in (str(root), "Traceback", "object at 0x", "Error(", "/tmp/"):
        assert marker not in text, f"{marker!r} leaks in {text!r}"
    return text
