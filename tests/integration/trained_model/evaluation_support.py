"""The EvaluationService test environment: the real trained_model server (SQLite and PostgreSQL) over real
NATS, with dataset versions from the real training_run server (made READY by the worker's real preparation
intake). Test modules import ``env`` and the training_run fixtures it needs from here."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner, Result

from common.artifacts import ArtifactStore
from common.proto.raven.v1 import datasets_pb2, evaluations_pb2, evaluations_pb2_grpc, events_pb2, types_pb2
from common.settings import Settings
from services.cli.main import app as ravenctl_app
from services.trained_model.bootstrap import App, build_app
from services.trained_model.entrypoints.convert import register_command
from services.trained_model.service_layer.registration import Registered
from tests.fixtures.dataset_versions import write_flights
from tests.helpers import JWT_SECRET, bearer, token
from tests.integration.training_run import conftest as training_run_fixtures
from tests.integration.training_run.conftest import AppFactory, Harness
from tests.integration.training_run.datasets_support import Datasets, dataset_root, preparing_worker, uri

# the real training_run server's fixtures (its dataset versions), used beside the trained_model server
make_harness = training_run_fixtures.make_harness
trained_models = training_run_fixtures.trained_models
ALICE = bearer(token("alice"))
CLASSES = ["bottle", "tire"]


@dataclass
class Env:
    h: Harness
    app: App
    store: ArtifactStore
    stub: evaluations_pb2_grpc.EvaluationServiceStub
    version: datasets_pb2.DatasetVersion

    async def register(
        self,
        *,
        classes: list[str] = CLASSES,
        test_map: float | None = 0.4,
        dataset: str = "",
        family: str = "",
    ) -> str:
        """A model as the registrar registers a run's completion (the run's test evaluation included)."""
        run_id = uuid.uuid4().hex[:12]
        ckpt = self.store.put_bytes(f"runs/{run_id}/best.pth", f"weights {run_id}".encode())
        event = events_pb2.RunEvent(run_id=run_id, attempt=1)
        done = event.completed
        done.artifacts.add(
            kind=types_pb2.CHECKPOINT, uri=ckpt.key, size_bytes=ckpt.size_bytes, sha256=ckpt.sha256
        )
        predictions = self.store.put_bytes(f"runs/{run_id}/test_predictions.json", b"[]")
        done.artifacts.add(
            kind=types_pb2.PREDICTIONS, uri=predictions.key, size_bytes=predictions.size_bytes,
            sha256=predictions.sha256,
        )  # fmt: skip
        done.evaluation.val.bbox_map = 0.5
        if test_map is not None:
            done.evaluation.test.bbox_map = test_map
            for name in classes:
                done.evaluation.test.per_class_ap.add(
                    class_name=name, ap=test_map, recommended_score_threshold=0.3
                )
        done.class_names.extend(classes)
        done.config.update({"model": {"bbox_head": {"num_classes": len(classes)}}})
        done.dataset = dataset or self.version.name
        done.dataset_version = done.dataset if dataset == "" else ""
        done.split_sha256 = self.version.split_sha256 if dataset == "" else ""
        done.owner, done.display_name, done.model_template = "alice", family or f"m-{run_id}", "rtmdet_tiny"
        outcome = await self.app.registration.register_completed(register_command(event))
        assert isinstance(outcome, Registered), outcome
        return f"trainedModels/{outcome.model.id}"

    async def create(self, model: str, version: str = "", split: str = "test", metadata: Any = ALICE) -> Any:
        request = evaluations_pb2.CreateEvaluationRequest(
            trained_model=model, dataset_version=version or self.version.name, split=split
        )
        return await self.stub.CreateEvaluation(request, metadata=metadata)

    async def get(self, name: str) -> evaluations_pb2.Evaluation:
        return await self.stub.GetEvaluation(evaluations_pb2.GetEvaluationRequest(name=name), metadata=ALICE)

    async def wait_state(self, name: str, state: int, timeout: float = 15.0) -> evaluations_pb2.Evaluation:  # noqa: ASYNC109
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = await self.get(name)
            if found.state == state:
                return found
            assert asyncio.get_running_loop().time() < deadline, f"state {state} not reached: {found}"
            await asyncio.sleep(0.05)


async def ready_version(h: Harness) -> datasets_pb2.DatasetVersion:
    """A READY version with train, val and test images (prepared by the worker's real intake)."""
    ds = Datasets.of(h)
    write_flights(dataset_root(h) / "survey", n_flights=8, frames=3)
    options = datasets_pb2.SplitOptions(train_fraction=0.5, val_fraction=0.25)
    version = await ds.version((await ds.create()).name, uri(h, "survey"), split_options=options)
    async with preparing_worker(h, "w-evaluations"):
        ready = await ds.wait_state(version.name, datasets_pb2.DATASET_VERSION_STATE_READY, timeout=60)
    assert {s.split: s.images for s in ready.split.splits}.get("test", 0) > 0, ready.split
    return ready


@pytest.fixture(name="env")
async def evaluation_env(
    make_harness: AppFactory, database_url: str, tmp_path: Path, nats_url: str
) -> AsyncIterator[Env]:
    h = await make_harness()
    version = await ready_version(h)
    settings = Settings(
        data_dir=tmp_path / "trained_model", database_url=database_url, nats_url=nats_url,
        jwt_secret=JWT_SECRET, training_run_addr=f"127.0.0.1:{h.app.port}",
        artifact_root=h.app.settings.artifact_root, log_json=False,
    )  # fmt: skip
    store = ArtifactStore(h.app.settings.artifact_root)
    app = await build_app(settings, address="127.0.0.1:0", names=h.names, artifacts=store)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.server.port}")
    try:
        yield Env(h, app, store, evaluations_pb2_grpc.EvaluationServiceStub(channel), version)
    finally:
        await channel.close()
        await app.close()


async def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value.code(), refused.value.details() or ""


async def ravenctl(env: Env, *args: str) -> Result:
    loop = asyncio.get_running_loop()

    def on_test_loop(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    base = [
        "--training-run-addr", f"127.0.0.1:{env.h.app.port}",
        "--trained-model-addr", f"127.0.0.1:{env.app.server.port}", "--token", token("alice"),
    ]  # fmt: skip
    return await asyncio.to_thread(
        CliRunner().invoke, ravenctl_app, [*base, *args], obj=on_test_loop, env={"RAVEN_TOKEN": None}
    )
