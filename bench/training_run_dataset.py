"""The dataset version the benchmark's runs train on (part of bench_training_run.py).

A run created on a plain ``dataset`` waits PENDING (not claimable) until a worker has prepared its implicit
version. So the benchmark does what a client with a prepared dataset does: it creates one version through
the public DatasetService, lets the trainer worker's real preparation intake (the same code a deployed worker
runs, on the bench's NATS connection) prepare it, and creates every run on that ``dataset_version``, which is
queued at once and claimable as before.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc

from common.artifacts import ArtifactStore
from common.nats_streams import StreamNames
from common.proto.raven.v1 import datasets_pb2, datasets_pb2_grpc
from common.settings import Settings
from services.trainer_worker.bootstrap import build_dataset_worker
from tests.fixtures.synthetic_coco import make_dataset

READY = datasets_pb2.DATASET_VERSION_STATE_READY
ENDED = {datasets_pb2.DATASET_VERSION_STATE_INVALID, READY}


def write_dataset(directory: Path) -> None:
    """A tiny valid COCO dataset (12 real 64 px JPEGs): its version's preparation splits it and ends READY."""
    make_dataset(directory, n_images=12, size=64, seed=5)


async def prepared_version(
    address: str, metadata: tuple[tuple[str, str], ...], nc: object, names: StreamNames,
    dataset_uri: str, artifact_root: str,
) -> str:  # fmt: skip
    """Creates a dataset and a version of ``dataset_uri`` through the API, prepares it with the worker's real
    intake, and returns the READY version's name."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = datasets_pb2_grpc.DatasetServiceStub(channel)
        dataset = await stub.CreateDataset(
            datasets_pb2.CreateDatasetRequest(dataset=datasets_pb2.Dataset(display_name="bench waste")),
            metadata=metadata,
        )
        version = await stub.CreateDatasetVersion(
            datasets_pb2.CreateDatasetVersionRequest(
                parent=dataset.name, dataset_version=datasets_pb2.DatasetVersion(source_uri=dataset_uri)
            ),
            metadata=metadata,
        )
        settings = Settings(artifact_root=artifact_root, subject_prefix=names.prefix)
        js = nc.jetstream()  # type: ignore[attr-defined]
        store = ArtifactStore(artifact_root)
        worker = await build_dataset_worker(settings, js, names, store, "bench-preparer", 30.0, 0.2)
        running = asyncio.create_task(worker.run())
        try:
            deadline = time.monotonic() + 120
            while version.state not in ENDED:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dataset version not prepared in 120 s: {version}")
                await asyncio.sleep(0.1)
                version = await stub.GetDatasetVersion(
                    datasets_pb2.GetDatasetVersionRequest(name=version.name), metadata=metadata
                )
        finally:
            await worker.shutdown()
            await running
        if version.state != READY:
            raise RuntimeError(f"dataset version not READY: {version}")
        return version.name
