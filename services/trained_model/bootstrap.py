"""The one place that wires trained_model: settings → engine, NATS, registrar, servicer, server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nats.aio.client import Client as NATS
from sqlalchemy.ext.asyncio import AsyncEngine

from common.artifacts import ArtifactStore
from common.auth import TokenVerifier
from common.db import make_engine, make_session_factory, upgrade_to_head_async
from common.dead_letters import DeadLetters
from common.grpc_server import RunningServer, ServiceRegistration, create_server
from common.metrics import GaugeRefresher
from common.nats_streams import RetryPolicy, StreamNames, connect, ensure_streams
from common.proto.raven.v1 import trained_model_pb2, trained_model_pb2_grpc
from common.settings import Settings
from common.tasks import STEP_TIMEOUT_SECONDS, Step, shut_down
from common.tls import ClientTLS, ServerTLS
from services.trained_model.adapters.dataset_versions import DatasetVersions
from services.trained_model.adapters.training_runs import GrpcTrainingRunQueries, TrainingRunQueries
from services.trained_model.entrypoints.evaluation_wiring import EvaluationParts, build_evaluations
from services.trained_model.entrypoints.grpc_servicer import REQUIRED_PERMISSIONS, TrainedModelServicer
from services.trained_model.entrypoints.metrics import CONFIGS_FAILING_GATE, metrics_refresher
from services.trained_model.entrypoints.registrar import DURABLE, Registrar
from services.trained_model.service_layer.config_audit import stored_configs_failing_gate
from services.trained_model.service_layer.registration import ModelRegistration
from services.trained_model.service_layer.registry import ModelRegistry
from services.trained_model.service_layer.unit_of_work import UnitOfWorkFactory

SERVICE = "trained_model"
MIGRATIONS = Path(__file__).parent / "adapters" / "migrations"
VERSION_TABLE = "alembic_version_trained_model"
SERVICE_NAME = trained_model_pb2.DESCRIPTOR.services_by_name["TrainedModelService"].full_name


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    settings: Settings
    engine: AsyncEngine
    server: RunningServer
    registry: ModelRegistry
    registration: ModelRegistration
    nats: NATS | None
    registrar: Registrar | None
    training_runs: TrainingRunQueries
    metrics: GaugeRefresher
    evaluation: EvaluationParts | None = None

    async def close(self, grace: float = 0, step_timeout: float = STEP_TIMEOUT_SECONDS) -> None:
        """Stop serving, then the registrar, then close connections; each step bounded (``common.tasks``)."""
        registrar = self.registrar
        steps = [
            Step(
                "grpc server", lambda: self.server.stop(grace), self.server.open_streams, grace + step_timeout
            ),
            Step("metrics", self.metrics.stop),
            *([Step("registrar", registrar.stop)] if registrar is not None else []),
            *([Step("evaluations", self.evaluation.stop)] if self.evaluation is not None else []),
            Step("nats", self._close_nats),
            Step("training_run client", self.training_runs.close),
            *([Step("versions client", self.evaluation.close)] if self.evaluation is not None else []),
            Step("database", self.engine.dispose),
        ]
        await shut_down(SERVICE, steps, step_timeout)

    async def _close_nats(self) -> None:
        if self.nats is not None and not self.nats.is_closed:
            await self.nats.close()


async def migrate(settings: Settings) -> None:
    await upgrade_to_head_async(MIGRATIONS, settings.database_url_for(SERVICE), VERSION_TABLE)


async def build_app(
    settings: Settings,
    *,
    address: str | None = None,
    names: StreamNames | None = None,
    artifacts: ArtifactStore | None = None,
    clock: Callable[[], datetime] = utc_now,
    training_runs: TrainingRunQueries | None = None,
    registrar_durable: str = DURABLE,
    start_registrar: bool = True,
    metrics_interval: float = 5.0,
    dataset_versions: DatasetVersions | None = None,
) -> App:
    """Migrate, connect and serve. Tests pass their own stream names, store, clock, training_run client."""
    await migrate(settings)
    engine = make_engine(settings.database_url_for(SERVICE))
    uow = UnitOfWorkFactory(make_session_factory(engine))
    store = artifacts or ArtifactStore(settings.artifact_root)
    runs = training_runs or GrpcTrainingRunQueries(
        settings.training_run_addr,
        secret=settings.jwt_secret,
        private_key=settings.jwt_private_key,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        tls=ClientTLS.from_settings(settings),
    )
    registration = ModelRegistration(uow, store, clock, training_runs=runs)
    CONFIGS_FAILING_GATE.set(len(await stored_configs_failing_gate(uow)))  # logs each one
    nc: NATS | None = None
    registrar: Registrar | None = None
    js = None
    stream_names = names or StreamNames.from_settings(settings)
    if start_registrar:
        nc = await connect(settings.nats_url, name="trained-model")
        js = nc.jetstream()
        await ensure_streams(js, stream_names, settings.stream_replicas)
        dead_letters = DeadLetters(
            js, stream_names, registrar_durable, RetryPolicy.from_settings(settings), clock
        )
        registrar = Registrar(js, stream_names, registration, clock, dead_letters)
        await registrar.start()
    evaluation = await build_evaluations(
        settings, uow, clock, nc, js, stream_names, versions=dataset_versions
    )
    registry = ModelRegistry(
        uow, store, runs, clock,
        publish_tolerance=settings.publish_tolerance, evaluations=evaluation.evaluations,
    )  # fmt: skip
    verifier = TokenVerifier(
        secret=settings.jwt_secret,
        public_key=settings.jwt_public_key,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        revoked_ids=settings.revoked_token_ids(),
    )
    service = ServiceRegistration(
        add_to_server=trained_model_pb2_grpc.add_TrainedModelServiceServicer_to_server,
        servicer=TrainedModelServicer(registry, registration),
        service_name=SERVICE_NAME,
        required_permissions=REQUIRED_PERMISSIONS,
    )
    server = await create_server(
        [service, evaluation.registration],
        verifier,
        address=address or f"[::]:{settings.grpc_port}",
        tls=ServerTLS.from_settings(settings),
        health_port=settings.health_port,
    )
    metrics = metrics_refresher(registry, js, stream_names, registrar_durable, metrics_interval)
    metrics.start()
    return App(settings, engine, server, registry, registration, nc, registrar, runs, metrics, evaluation)
