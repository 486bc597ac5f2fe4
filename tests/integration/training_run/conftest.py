"""training_run against a real nats-server, a real database and its real gRPC server on a free port.

The trained_model service is stood in for by a tiny real gRPC server implementing GetTrainedModel only.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import nats
import numpy as np
import pytest
from PIL import Image

from common.nats_streams import StreamNames
from common.proto.raven.v1 import (
    events_pb2,
    trained_model_pb2,
    trained_model_pb2_grpc,
    training_run_pb2,
    training_run_pb2_grpc,
    types_pb2,
)
from common.settings import Settings
from services.training_run import bootstrap
from services.training_run.adapters.trained_models import GrpcTrainedModelClient
from tests.helpers import JWT_SECRET, bearer, token, worker_token

CLASSES = ["bottle", "tire", "bag"]


class TinyTrainedModels(trained_model_pb2_grpc.TrainedModelServiceServicer):
    def __init__(self) -> None:
        self.models: dict[str, trained_model_pb2.TrainedModel] = {}
        self.seen_metadata: list[dict[str, str]] = []

    async def GetTrainedModel(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.seen_metadata.append(dict(context.invocation_metadata() or ()))
        model = self.models.get(request.name)
        if model is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{request.name} not found")
        return model


@pytest.fixture(scope="session")
async def trained_models() -> AsyncIterator[tuple[TinyTrainedModels, str]]:
    server = grpc.aio.server()
    servicer = TinyTrainedModels()
    trained_model_pb2_grpc.add_TrainedModelServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(0)


def write_dataset(
    root: Path, name: str = "waste/v1", classes: list[str] = CLASSES, per_class: int = 3
) -> str:
    """A tiny valid COCO dataset: ``per_class`` 32x32 JPEGs of distinct noise per class, one box each, every
    image its own group (``sequence``), so that its version's preparation splits it and ends READY."""
    directory = root / name
    (directory / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(classes))
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i in range(len(classes) * per_class):
        out = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(out, "JPEG", quality=90)
        (directory / "img" / f"{i}.jpg").write_bytes(out.getvalue())
        images.append({"id": i + 1, "file_name": f"img/{i}.jpg", "width": 32, "height": 32, "sequence": i})
        box = [2 + i % 5, 3, 10 + i % 7, 12]
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1 + i % len(classes), "bbox": box})
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(classes)]
    (directory / "annotations.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return name


def awaiting_version(run: training_run_pb2.TrainingRun) -> bool:
    """Created on a plain dataset reference whose implicit version is still being prepared (no job yet)."""
    return run.state == types_pb2.PENDING and bool(run.dataset_version) and not run.split_sha256


@dataclass
class Harness:
    app: bootstrap.App
    channel: grpc.aio.Channel
    stub: training_run_pb2_grpc.TrainingRunServiceStub
    names: StreamNames
    nc: Any
    dataset: str
    trained_models: TinyTrainedModels
    user: tuple[tuple[str, str]] = field(default_factory=lambda: bearer(token("alice")))
    worker: tuple[tuple[str, str]] = field(default_factory=lambda: bearer(worker_token()))
    prepares: bool = True  # its relay and consumers run: a version it queues gets prepared and applied

    async def create(self, request_id: str = "", **overrides: Any) -> training_run_pb2.TrainingRun:
        run = training_run_pb2.TrainingRun(
            display_name="waste detector",
            dataset=self.dataset,
            model_template="rtmdet_tiny",
            hyperparameters=types_pb2.Hyperparameters(epochs=2),
        )
        metadata = overrides.pop("metadata", None) or self.user
        for key, value in overrides.items():
            if key == "hyperparameters":
                run.hyperparameters.CopyFrom(value)
            elif isinstance(value, list):
                getattr(run, key).extend(value)
            else:
                setattr(run, key, value)
        created = await self.stub.CreateTrainingRun(
            training_run_pb2.CreateTrainingRunRequest(training_run=run, request_id=request_id),
            metadata=metadata,
        )
        if self.prepares and awaiting_version(created):
            return await self.prepare_version(created)
        return created

    async def prepare_version(self, run: training_run_pb2.TrainingRun) -> training_run_pb2.TrainingRun:
        """The run once the worker's real preparation intake prepared the version it waits for (a plain
        dataset reference's implicit version), as read then: queued, or FAILED with the version INVALID."""
        from tests.integration.training_run.datasets_support import preparing_worker  # imports this module

        async with preparing_worker(self, "w-harness"):
            return await self.wait_for(run.name, lambda r: not awaiting_version(r), timeout=60)

    async def claim(self, name: str, worker_id: str = "w1", attempt: int = 1) -> Any:
        return await self.stub.ClaimTrainingRun(
            training_run_pb2.ClaimTrainingRunRequest(name=name, worker_id=worker_id, job_attempt=attempt),
            metadata=self.worker,
        )

    async def publish_event(self, run_id: str, attempt: int, **payload: Any) -> int:
        event = events_pb2.RunEvent(run_id=run_id, attempt=attempt, **payload)
        event.time.GetCurrentTime()
        ack = await self.nc.jetstream().publish(
            self.names.run_events_subject(run_id), event.SerializeToString()
        )
        return int(ack.seq)

    async def get(self, name: str) -> training_run_pb2.TrainingRun:
        return await self.stub.GetTrainingRun(
            training_run_pb2.GetTrainingRunRequest(name=name), metadata=self.user
        )

    # ``timeout`` is a polling deadline whose expiry reports the last run seen, which a caller's
    # asyncio.timeout (what ASYNC109 suggests) could not.
    async def wait_for(
        self,
        name: str,
        predicate: Callable[[training_run_pb2.TrainingRun], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> training_run_pb2.TrainingRun:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            run = await self.get(name)
            if predicate(run):
                return run
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition not reached; run is {run}")
            await asyncio.sleep(0.05)


AppFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_harness(
    tmp_path: Path, nats_url: str, unique: str, trained_models: tuple[TinyTrainedModels, str]
) -> AsyncIterator[AppFactory]:
    """Builds (and later closes) apps sharing one database, dataset root and stream names."""
    servicer, address = trained_models
    names = StreamNames(jobs=f"TRJ_{unique}", events=f"TRE_{unique}", prefix=f"tr{unique}")
    dataset_root = tmp_path / "datasets"
    dataset = write_dataset(dataset_root)
    nc = await nats.connect(nats_url)
    made: list[Harness] = []

    async def make(database_url: str = "", **options: Any) -> Harness:
        settings_overrides = options.pop("settings", {})
        settings = Settings(
            data_dir=tmp_path,
            database_url=database_url,
            nats_url=nats_url,
            grpc_port=0,
            jwt_secret=JWT_SECRET,
            dataset_root=f"file://{dataset_root}",
            log_json=False,
            **settings_overrides,
        )
        app = await bootstrap.build_app(
            settings,
            address="127.0.0.1:0",
            names=names,
            trained_models=GrpcTrainedModelClient(address),
            **options,
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
        harness = Harness(
            app, channel, training_run_pb2_grpc.TrainingRunServiceStub(channel), names, nc, dataset, servicer
        )
        harness.prepares = options.get("start_relay", True) and options.get("start_consumer", True)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.channel.close()
        # Bounded, so a shutdown that hangs fails this test instead of the whole session's event loop.
        await asyncio.wait_for(harness.app.close(), 60)
    await asyncio.wait_for(nc.drain(), 60)


@pytest.fixture
async def harness(make_harness: AppFactory, database_url: str) -> Harness:
    return await make_harness(database_url)


@pytest.fixture
async def sqlite_harness(make_harness: AppFactory) -> Harness:
    return await make_harness()


# ``timeout`` is a collection window (what arrived by then is returned), not a cancellation deadline.
async def pull_jobs(
    nc: Any,
    names: StreamNames,
    expect: int,
    timeout: float = 3.0,  # noqa: ASYNC109
    *,
    subject: str = "",
    durable: str = "test-worker",
) -> list[events_pb2.TrainingJob]:
    """Every job on the work queue (acked, as a worker would), or only those on ``subject`` (one run size's).

    Waits up to ``timeout`` seconds for ``expect`` of them.
    """
    js = nc.jetstream()
    subscription = await js.pull_subscribe(subject or names.jobs_subject, durable=durable, stream=names.jobs)
    jobs: list[events_pb2.TrainingJob] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            messages = await subscription.fetch(10, timeout=0.3)
        except (TimeoutError, nats.errors.TimeoutError):
            if len(jobs) >= expect:
                break
            continue
        for message in messages:
            jobs.append(events_pb2.TrainingJob.FromString(message.data))
            await message.ack()
    await subscription.unsubscribe()
    return jobs
