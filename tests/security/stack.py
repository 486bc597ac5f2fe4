"""Both gRPC services, real, on one background event loop thread, for the security tests.

The security tests are plain sync functions (hypothesis drives sync functions), so the servers cannot live on
pytest-asyncio's session loop, which only runs while an async test or fixture runs. Here they get their own
loop in a daemon thread, and the tests talk to them over ordinary sync gRPC channels, like any external client
would.

Wiring is the production one: training_run's base-model lookups go to the real trained_model server, and
trained_model's "active runs" query goes to the real training_run server; SQLite files per service, the real
nats-server of the test session, a local dataset root and artifact root.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.artifacts import ArtifactStore
from common.auth import USER_PERMISSIONS, Permission
from common.nats_streams import StreamNames
from common.proto.raven.v1 import (
    datasets_pb2,
    datasets_pb2_grpc,
    evaluations_pb2_grpc,
    trained_model_pb2,
    trained_model_pb2_grpc,
    training_run_pb2,
    training_run_pb2_grpc,
    types_pb2,
)
from common.settings import Settings
from common.tls import ClientTLS, sync_channel
from services.trained_model import bootstrap as tm_bootstrap
from services.training_run import bootstrap as tr_bootstrap
from services.training_run.adapters.trained_models import GrpcTrainedModelClient
from tests.helpers import JWT_SECRET, bearer, token, worker_token
from tests.integration.training_run.conftest import awaiting_version
from tests.integration.training_run.conftest import write_dataset as write_valid_dataset
from tests.integration.training_run.datasets_support import preparation_intake

T = TypeVar("T")
CLASSES = ["bottle", "tire", "bag"]
# An owner without the view-all claims: sees only its own runs and its own or published models.
OWNER_PERMISSIONS = frozenset(
    USER_PERMISSIONS
    - {Permission.VIEW_ALL_TRAINING_RUNS, Permission.VIEW_ALL_MODELS, Permission.VIEW_ALL_DATASETS}
)
JSON_CONFIG = {"model": {"type": "RTMDet", "bbox_head": {"type": "RTMDetSepBNHead", "num_classes": 2}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_dataset(root: Path, name: str, classes: Iterable[str]) -> str:
    """A tiny valid COCO dataset (real images): its implicit version's preparation ends READY."""
    return write_valid_dataset(root, name, list(classes))


def checkpoint_bytes(cls_rows: int) -> bytes:
    import torch

    state = {f"bbox_head.rtm_cls.{i}.weight": torch.zeros(cls_rows, 8, 1, 1) for i in range(3)}
    state["backbone.stem.weight"] = torch.ones(4, 3, 3, 3)
    buffer = io.BytesIO()
    torch.save({"meta": {"epoch": 3}, "state_dict": state}, buffer)
    return buffer.getvalue()


@dataclass
class Identities:
    """Bearer metadata for each kind of caller."""

    alice: tuple[tuple[str, str], ...] = field(
        default_factory=lambda: bearer(token("alice", OWNER_PERMISSIONS))
    )
    bob: tuple[tuple[str, str], ...] = field(default_factory=lambda: bearer(token("bob", OWNER_PERMISSIONS)))
    carol: tuple[tuple[str, str], ...] = field(
        default_factory=lambda: bearer(token("carol", OWNER_PERMISSIONS))
    )
    user: tuple[tuple[str, str], ...] = field(
        default_factory=lambda: bearer(token("dave"))
    )  # all user claims
    admin: tuple[tuple[str, str], ...] = field(
        default_factory=lambda: bearer(token("root", [Permission.SUPERADMIN]))
    )
    worker: tuple[tuple[str, str], ...] = field(default_factory=lambda: bearer(worker_token("worker-1")))


class Stack:
    def __init__(
        self,
        root: Path,
        nats_url: str,
        *,
        tls_settings: dict[str, str] | None = None,
        client_tls: ClientTLS | None = None,
    ) -> None:
        """``tls_settings``: RAVEN_TLS_* fields of both services (server and peer-client side);
        ``client_tls``: how the test's own channels connect (None = plaintext)."""
        self.root = root
        self.tls_settings = dict(tls_settings or {})
        self.client_tls = client_tls
        self.nats_url = nats_url
        self.dataset_root = root / "datasets"
        self.artifact_root = root / "artifacts"
        self.dataset = write_dataset(self.dataset_root, "waste/v1", CLASSES)
        self.who = Identities()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="security-stack", daemon=True)
        self._thread.start()
        self.store = ArtifactStore(f"file://{self.artifact_root}")
        self.tm_app: tm_bootstrap.App | None = None
        self.tr_app: tr_bootstrap.App | None = None
        self._intake: Any = None
        self.channels: list[grpc.Channel] = []
        self._evaluation_version = ""

    # ---- lifecycle -----------------------------------------------------------------------------------------
    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> Stack:
        self.call(self._start())
        self.tr_channel = sync_channel(f"127.0.0.1:{self.tr_port}", self.client_tls)
        self.tm_channel = sync_channel(f"127.0.0.1:{self.tm_port}", self.client_tls)
        self.channels = [self.tr_channel, self.tm_channel]
        self.runs = training_run_pb2_grpc.TrainingRunServiceStub(self.tr_channel)
        self.models = trained_model_pb2_grpc.TrainedModelServiceStub(self.tm_channel)
        self.datasets = datasets_pb2_grpc.DatasetServiceStub(self.tr_channel)
        self.evaluations = evaluations_pb2_grpc.EvaluationServiceStub(self.tm_channel)
        return self

    async def _start(self) -> None:
        unique = uuid.uuid4().hex[:8]
        names = StreamNames(jobs=f"SECJ_{unique}", events=f"SECE_{unique}", prefix=f"sec{unique}")
        tr_port = free_port()
        common = dict(
            data_dir=self.root,
            nats_url=self.nats_url,
            jwt_secret=JWT_SECRET,
            dataset_root=f"file://{self.dataset_root}",
            artifact_root=f"file://{self.artifact_root}",
            log_json=False,
            jobs_stream=names.jobs,
            events_stream=names.events,
            subject_prefix=names.prefix,
            **self.tls_settings,
        )
        tm_settings = Settings(grpc_port=0, training_run_addr=f"127.0.0.1:{tr_port}", **common)  # type: ignore[arg-type]
        self.tm_app = await tm_bootstrap.build_app(
            tm_settings, address="127.0.0.1:0", names=names, artifacts=self.store
        )
        self.tm_port = self.tm_app.server.port
        tr_settings = Settings(grpc_port=0, trained_model_addr=f"127.0.0.1:{self.tm_port}", **common)  # type: ignore[arg-type]
        self.tr_app = await tr_bootstrap.build_app(
            tr_settings,
            address=f"127.0.0.1:{tr_port}",
            names=names,
            trained_models=GrpcTrainedModelClient(
                f"127.0.0.1:{self.tm_port}", tls=ClientTLS.from_settings(tr_settings)
            ),
        )
        self.tr_port = self.tr_app.port
        # The trainer worker's real preparation intake: a plain dataset reference's implicit version is
        # prepared as in a deployment (no training worker: runs stay PENDING once queued).
        self._intake = preparation_intake(self.tr_app.nc, names, f"file://{self.artifact_root}", "w-security")
        await self._intake.__aenter__()

    def stop(self) -> None:
        for channel in self.channels:
            channel.close()
        try:
            if self._intake is not None:
                self.call(self._intake.__aexit__(None, None, None))
            if self.tr_app is not None:
                self.call(self.tr_app.close())
            if self.tm_app is not None:
                self.call(self.tm_app.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # ---- checks --------------------------------------------------------------------------------------------
    def healthy(self) -> bool:
        for channel in self.channels:
            stub = health_pb2_grpc.HealthStub(channel)
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            if answer.status != health_pb2.HealthCheckResponse.SERVING:
                return False
        return True

    # ---- seeding through the public API --------------------------------------------------------------------
    def create_run(self, who: Any, display_name: str = "waste detector", **fields: Any) -> Any:
        run = training_run_pb2.TrainingRun(
            display_name=display_name,
            dataset=fields.pop("dataset", self.dataset),
            model_template=fields.pop("model_template", "rtmdet_tiny"),
            hyperparameters=types_pb2.Hyperparameters(epochs=1),
            **fields,
        )
        created = self.runs.CreateTrainingRun(
            training_run_pb2.CreateTrainingRunRequest(training_run=run), metadata=who, timeout=60
        )
        deadline = time.monotonic() + 60
        while awaiting_version(created) and time.monotonic() < deadline:  # its implicit version is prepared
            time.sleep(0.05)
            created = self.runs.GetTrainingRun(
                training_run_pb2.GetTrainingRunRequest(name=created.name), metadata=who
            )
        return created

    def import_model(
        self, who: Any, display_name: str, *, publish: bool = False, classes: Iterable[str] = ("dump", "tyre")
    ) -> Any:
        """An imported model (default: classes the stack's dataset does not have; ``classes=CLASSES`` for one
        that can be evaluated on ``evaluation_version``)."""
        names = list(classes)
        config = json.loads(json.dumps(JSON_CONFIG))
        config["model"]["bbox_head"]["num_classes"] = len(names)
        prefix = uuid.uuid4().hex[:8]
        self.store.put_bytes(f"imports/{prefix}/config.json", json.dumps(config).encode())
        self.store.put_bytes(f"imports/{prefix}/model.pth", checkpoint_bytes(len(names)))
        model = self.models.ImportTrainedModel(
            trained_model_pb2.ImportTrainedModelRequest(
                display_name=display_name,
                config_uri=f"imports/{prefix}/config.json",
                checkpoint_uri=f"imports/{prefix}/model.pth",
                class_names=names,
                model_template="rtmdet_tiny",
            ),
            metadata=who,
            timeout=60,
        )
        if publish:
            model = self.models.PublishTrainedModel(
                trained_model_pb2.PublishTrainedModelRequest(name=model.name), metadata=who, timeout=30
            )
        return model

    def evaluation_version(self) -> str:
        """Alice's READY version of the stack's dataset, with test images (made once, prepared by the real
        intake): what the EvaluationService calls evaluate models of ``CLASSES`` on."""
        if self._evaluation_version:
            return self._evaluation_version
        alice = self.who.alice
        dataset = self.datasets.CreateDataset(
            datasets_pb2.CreateDatasetRequest(dataset=datasets_pb2.Dataset(display_name="evaluation data")),
            metadata=alice,
            timeout=30,
        )
        version = datasets_pb2.DatasetVersion(
            source_uri=f"file://{self.dataset_root}/{self.dataset}",
            split_options=datasets_pb2.SplitOptions(train_fraction=0.5, val_fraction=0.25),
        )
        created = self.datasets.CreateDatasetVersion(
            datasets_pb2.CreateDatasetVersionRequest(parent=dataset.name, dataset_version=version),
            metadata=alice,
            timeout=30,
        )
        deadline = time.monotonic() + 60
        while created.state != datasets_pb2.DATASET_VERSION_STATE_READY:
            assert created.state != datasets_pb2.DATASET_VERSION_STATE_INVALID, created
            assert time.monotonic() < deadline, f"{created.name} not READY: {created}"
            time.sleep(0.05)
            created = self.datasets.GetDatasetVersion(
                datasets_pb2.GetDatasetVersionRequest(name=created.name), metadata=alice, timeout=30
            )
        assert {s.split: s.images for s in created.split.splits}.get("test", 0) > 0, created.split
        self._evaluation_version = str(created.name)
        return self._evaluation_version
