"""What the implicit dataset version adds to a CreateTrainingRun on a plain dataset reference.

    .venv/bin/python bench/bench_implicit_version.py [--sizes 50 2000] [--creates 5] [--side 320]

A real training_run server (SQLite, its own nats-server) and a COCO directory of N distinct JPEGs (``--side``
px noise scenes, one box each). Per size:
- the first plain Create (pins the files: every file hashed and stored content-addressed, the version made)
  and the worker's real preparation intake preparing that version to READY (not part of any Create);
- ``--creates`` more plain Creates on the unchanged directory: each pins the directory again, finds the READY
  version by its snapshot sha256 and queues the run; with the server's hash cache (files unchanged since the
  last pin are not read) and without it (every file read and hashed);
- as many Creates naming that version (``dataset_version``): the same run without any hashing;
- the pin alone (``DatasetSnapshots.from_reference``) on the unchanged directory, in-process, both ways.
The difference of a plain Create's median and a version Create's is the implicit version's cost per Create.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import nats
import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.artifacts import ArtifactStore
from common.nats_launcher import start_local_nats
from common.nats_streams import StreamNames
from common.proto.raven.v1 import training_run_pb2, training_run_pb2_grpc, types_pb2
from common.settings import Settings
from services.training_run import bootstrap
from services.training_run.adapters.dataset_snapshot import DatasetSnapshots, HashCache, SnapshotLimits
from services.training_run.adapters.trained_models import BaseModelInfo, TrainedModelClient
from tests.helpers import JWT_SECRET, bearer, token
from tests.integration.training_run.datasets_support import preparation_intake

USER = bearer(token("alice"))


class NoModels(TrainedModelClient):
    async def get(self, name: str, metadata: object) -> BaseModelInfo:
        raise AssertionError("no base model in this bench")


def write_dataset(directory: Path, n: int, side: int) -> int:
    """N distinct JPEGs (smooth noise scenes, ~side x side) and their annotations; returns the bytes."""
    rng = np.random.default_rng(n)
    (directory / "img").mkdir(parents=True)
    images, annotations, total = [], [], 0
    for i in range(n):
        cells = max(side // 16, 1)
        scene = np.kron(rng.integers(0, 255, (cells, cells, 3)), np.ones((16, 16, 1)))
        pixels = np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=90)
        (directory / "img" / f"{i}.jpg").write_bytes(out.getvalue())
        total += len(out.getvalue())
        size = cells * 16
        images.append({"id": i + 1, "file_name": f"img/{i}.jpg", "width": size, "height": size})
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 2, "bbox": [4, 4, 40, 30]})
    categories = [{"id": 1, "name": "bottle"}, {"id": 2, "name": "tire"}]
    doc = {"images": images, "annotations": annotations, "categories": categories}
    (directory / "annotations.json").write_text(json.dumps(doc))
    return total


async def timed_create(
    stub: training_run_pb2_grpc.TrainingRunServiceStub, **source: str
) -> tuple[float, Any]:
    hyperparameters = types_pb2.Hyperparameters(epochs=1)
    run = training_run_pb2.TrainingRun(
        display_name="bench", model_template="rtmdet_tiny", hyperparameters=hyperparameters
    )
    for field, value in source.items():
        setattr(run, field, value)
    start = time.perf_counter()
    created = await stub.CreateTrainingRun(
        training_run_pb2.CreateTrainingRunRequest(training_run=run), metadata=USER
    )
    return time.perf_counter() - start, created


async def wait_ready(
    stub: training_run_pb2_grpc.TrainingRunServiceStub, name: str
) -> training_run_pb2.TrainingRun:
    while True:
        run = await stub.GetTrainingRun(training_run_pb2.GetTrainingRunRequest(name=name), metadata=USER)
        if run.split_sha256 or run.state != types_pb2.PENDING:
            return run
        await asyncio.sleep(0.1)


async def bench_size(
    app: bootstrap.App, nc: object, names: StreamNames, root: Path, n: int, args: argparse.Namespace
) -> dict[str, object]:
    reference = f"bench/{n}"
    megabytes = write_dataset(root / reference, n, args.side) / 1e6
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    stub = training_run_pb2_grpc.TrainingRunServiceStub(channel)
    first, waiting = await timed_create(stub, dataset=reference)
    start = time.perf_counter()
    async with preparation_intake(nc, names, app.settings.artifact_root, "w-bench"):
        ready = await wait_ready(stub, waiting.name)
    prepared = time.perf_counter() - start
    assert ready.split_sha256, ready
    await timed_create(stub, dataset=reference)  # its files are now > 2 s old: this pin fills the cache
    plain = [(await timed_create(stub, dataset=reference))[0] for _ in range(args.creates)]
    implicit = app.service._implicit  # the server's pin, once without its hash cache (private: bench only)
    assert implicit is not None
    cached_pin = implicit._pin
    store = ArtifactStore(app.settings.artifact_root)
    uncached = DatasetSnapshots(store, app.settings.dataset_root, SnapshotLimits(), HashCache(max_entries=0))
    implicit._pin = uncached.from_reference
    plain_uncached = [(await timed_create(stub, dataset=reference))[0] for _ in range(args.creates)]
    implicit._pin = cached_pin
    versioned = [
        (await timed_create(stub, dataset_version=ready.dataset_version))[0] for _ in range(args.creates)
    ]
    pins: dict[str, list[float]] = {"pin": [], "pin uncached": []}
    for key, hashes in (("pin", HashCache()), ("pin uncached", HashCache(max_entries=0))):
        snapshots = DatasetSnapshots(store, app.settings.dataset_root, SnapshotLimits(), hashes)
        await asyncio.to_thread(snapshots.from_reference, reference)  # fills the cache (files > 2 s old)
        for _ in range(args.creates):
            start = time.perf_counter()
            await asyncio.to_thread(snapshots.from_reference, reference)
            pins[key].append(time.perf_counter() - start)
    await channel.close()
    return {
        "images": n, "MB": megabytes, "first": first, "prepare": prepared,
        "plain": statistics.median(plain), "versioned": statistics.median(versioned),
        "plain uncached": statistics.median(plain_uncached),
        "pin": statistics.median(pins["pin"]), "pin uncached": statistics.median(pins["pin uncached"]),
    }  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        server = start_local_nats(base / "nats")
        names = StreamNames(jobs="BENCHJ", events="BENCHE", prefix="bench")
        root = base / "datasets"
        root.mkdir()
        settings = Settings(
            data_dir=base, nats_url=server.url, grpc_port=0, jwt_secret=JWT_SECRET,
            dataset_root=f"file://{root}", log_json=False, log_level="WARNING",
        )  # fmt: skip
        app = await bootstrap.build_app(
            settings, address="127.0.0.1:0", names=names, trained_models=NoModels()
        )
        nc = await nats.connect(server.url)
        try:
            rows = [await bench_size(app, nc, names, root, n, args) for n in args.sizes]
        finally:
            await nc.drain()
            await app.close()
            server.stop()
    report(rows, args.creates)


def report(rows: list[dict[str, object]], creates: int) -> None:
    table = Table(
        title=f"CreateTrainingRun on a plain dataset reference vs on its version (median of {creates})"
    )
    columns = ("images", "MB", "1st plain Create", "(prepare)", "version Create", "plain, no cache",
               "plain, cached", "pin, no cache", "pin, cached")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    keys = ("first", "prepare", "versioned", "plain uncached", "plain", "pin uncached", "pin")
    for r in rows:
        ms = {k: 1000 * float(r[k]) for k in keys}  # type: ignore[arg-type]
        cells = [f"{ms[k]:.0f} ms" for k in keys]
        cells[1] = f"{ms['prepare'] / 1000:.1f} s"
        table.add_row(str(r["images"]), f"{r['MB']:.1f}", *cells)
    Console(width=160).print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 2000])
    parser.add_argument("--creates", type=int, default=5)
    parser.add_argument("--side", type=int, default=320, help="image side in px")
    asyncio.run(main(parser.parse_args()))
