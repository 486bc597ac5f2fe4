"""A real trained_model server (port 0) on SQLite and PostgreSQL, real NATS, and a tiny real training_run
server.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from common.artifacts import ArtifactStore
from common.auth import Principal, TokenVerifier
from common.nats_streams import StreamNames, connect
from common.proto.raven.v1 import (
    datasets_pb2_grpc,
    events_pb2,
    trained_model_pb2_grpc,
    training_run_pb2,
    training_run_pb2_grpc,
    types_pb2,
)
from common.settings import Settings
from services.trained_model.bootstrap import App, build_app
from services.trained_model.domain.model import Artifact, ArtifactKind, TrainedModel
from services.trained_model.service_layer.commands import RegisterTrainedModel
from services.trained_model.service_layer.registration import Registered
from tests.helpers import JWT_SECRET


class FakeTrainingRunService(training_run_pb2_grpc.TrainingRunServiceServicer):
    """Answers ListTrainingRuns from a set of base models that have an active run; records who asked."""

    def __init__(self) -> None:
        self.active_bases: set[str] = set()
        self.states: dict[str, int] = {}  # run id -> RunState; a run not listed is NOT_FOUND
        self.callers: list[Principal] = []
        self.requests: list[training_run_pb2.ListTrainingRunsRequest] = []
        self._verifier = TokenVerifier(secret=JWT_SECRET)

    async def ListTrainingRuns(self, request, context):  # type: ignore[no-untyped-def]
        metadata = dict(context.invocation_metadata())
        self.callers.append(self._verifier.verify(metadata.get("authorization", "").removeprefix("Bearer ")))
        self.requests.append(request)
        active = {types_pb2.PENDING, types_pb2.RUNNING, types_pb2.CANCELLING}
        if request.base_model in self.active_bases and active & set(request.states):
            run = training_run_pb2.TrainingRun(name="trainingRuns/r-active", base_model=request.base_model)
            return training_run_pb2.ListTrainingRunsResponse(training_runs=[run], total_size=1)
        return training_run_pb2.ListTrainingRunsResponse()

    async def GetTrainingRun(self, request, context):  # type: ignore[no-untyped-def]
        run_id = request.name.removeprefix("trainingRuns/")
        if run_id not in self.states:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{request.name} does not exist")
        return training_run_pb2.TrainingRun(name=request.name, owner="alice", state=self.states[run_id])


class NoDatasetVersions(datasets_pb2_grpc.DatasetServiceServicer):
    """This training_run knows no dataset version: GetDatasetVersion answers NOT_FOUND (a deleted version).
    (tests/integration/trained_model/evaluation_support.py has the real training_run and its versions.)"""

    async def GetDatasetVersion(self, request, context):  # type: ignore[no-untyped-def]
        await context.abort(grpc.StatusCode.NOT_FOUND, f"{request.name} does not exist")


@dataclass
class Env:
    app: App
    store: ArtifactStore
    names: StreamNames
    stub: trained_model_pb2_grpc.TrainedModelServiceStub
    runs: FakeTrainingRunService
    nats_url: str
    created: list[str] = field(default_factory=list)

    def put(self, key: str, data: bytes) -> Artifact:
        stored = self.store.put_bytes(key, data)
        return Artifact(ArtifactKind.CHECKPOINT, stored.key, stored.size_bytes, stored.sha256)

    def completed_event(
        self,
        run_id: str,
        *,
        owner: str = "alice",
        display_name: str = "dumps",
        base_model_id: str = "",
        bbox_map: float = 0.5,
        sha256: str | None = None,
        data: bytes | None = None,
    ) -> events_pb2.RunEvent:
        payload = data if data is not None else f"weights of {run_id}".encode()
        ckpt = self.put(f"runs/{run_id}/best.pth", payload)
        log = self.store.put_bytes(f"runs/{run_id}/train.log", b"epoch 1 loss 0.5\n" * 100)
        event = events_pb2.RunEvent(run_id=run_id, attempt=1)
        done = event.completed
        done.artifacts.add(
            kind=types_pb2.CHECKPOINT,
            uri=ckpt.uri,
            size_bytes=ckpt.size_bytes,
            sha256=sha256 if sha256 is not None else ckpt.sha256,
        )
        done.artifacts.add(kind=types_pb2.LOG, uri=log.key, size_bytes=log.size_bytes, sha256=log.sha256)
        done.evaluation.val.bbox_map = bbox_map
        done.evaluation.val.per_class_ap.add(class_name="dump", ap=bbox_map)
        done.evaluation.best_epoch = 2
        done.evaluation.history.add(epoch=1, bbox_map=bbox_map / 2, train_loss=1.0)
        done.dataset_snapshot_sha256 = hashlib.sha256(run_id.encode()).hexdigest()
        done.config.update({"model": {"bbox_head": {"num_classes": 1}}})
        done.config_text = "model = dict(bbox_head=dict(num_classes=1))"
        done.config_sha256 = "c" * 64
        done.versions.torch = "2.13"
        done.seed, done.training_seconds, done.parameter_count, done.epochs = 7, 12.5, 1234, 3
        done.learning_rate, done.average_loss = 0.01, 0.42
        done.class_names.append("dump")
        done.model_template = "rtmdet_tiny"
        done.dataset = "datasets/dumps-1"
        done.base_model_id = base_model_id
        done.owner = owner
        done.display_name = display_name
        return event

    async def seed(self, **kwargs: object) -> TrainedModel:
        """Register a model through the service layer (as the registrar does, without the NATS round trip)."""
        from services.trained_model.entrypoints.convert import register_command

        run_id = str(kwargs.pop("run_id", uuid.uuid4().hex[:12]))
        command: RegisterTrainedModel = register_command(self.completed_event(run_id, **kwargs))  # type: ignore[arg-type]
        outcome = await self.app.registration.register_completed(command)
        assert isinstance(outcome, Registered), outcome
        return outcome.model


@pytest.fixture
async def training_run_server() -> AsyncIterator[tuple[FakeTrainingRunService, int]]:
    servicer = FakeTrainingRunService()
    server = grpc.aio.server()
    training_run_pb2_grpc.add_TrainingRunServiceServicer_to_server(servicer, server)
    datasets_pb2_grpc.add_DatasetServiceServicer_to_server(NoDatasetVersions(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, port
    await server.stop(0)


@pytest.fixture
async def env(
    database_url: str,
    nats_url: str,
    tmp_path: Path,
    unique: str,
    training_run_server: tuple[FakeTrainingRunService, int],
) -> AsyncIterator[Env]:
    runs, port = training_run_server
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        nats_url=nats_url,
        jwt_secret=JWT_SECRET,
        training_run_addr=f"127.0.0.1:{port}",
        log_json=False,
    )
    names = StreamNames(jobs=f"TMJ_{unique}", events=f"TME_{unique}", prefix=f"tm{unique}")
    store = ArtifactStore(f"file://{tmp_path / 'artifacts'}")
    app = await build_app(settings, address="127.0.0.1:0", names=names, artifacts=store)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.server.port}")
    try:
        yield Env(app, store, names, trained_model_pb2_grpc.TrainedModelServiceStub(channel), runs, nats_url)
    finally:
        await channel.close()
        await app.close()


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[object]:
    nc = await connect(nats_url, name="trained-model-tests")
    yield nc.jetstream()
    await nc.close()
