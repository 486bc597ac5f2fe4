"""The one place that wires trained_model: settings → engine, NATS, servicer, server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from common.auth import TokenVerifier
from common.db import make_engine, upgrade_to_head_async
from common.grpc_server import RunningServer, ServiceRegistration, create_server
from common.proto.raven.v1 import trained_model_pb2, trained_model_pb2_grpc
from common.settings import Settings
from services.trained_model.entrypoints.grpc_servicer import TrainedModelServicer

SERVICE = "trained_model"
MIGRATIONS = Path(__file__).parent / "adapters" / "migrations"
VERSION_TABLE = "alembic_version_trained_model"
SERVICE_NAME = trained_model_pb2.DESCRIPTOR.services_by_name["TrainedModelService"].full_name


@dataclass
class App:
    settings: Settings
    engine: AsyncEngine
    server: RunningServer

    async def close(self, grace: float = 0) -> None:
        await self.server.stop(grace)
        await self.engine.dispose()


async def migrate(settings: Settings) -> None:
    await upgrade_to_head_async(MIGRATIONS, settings.database_url_for(SERVICE), VERSION_TABLE)


async def build_app(settings: Settings, *, address: str | None = None) -> App:
    await migrate(settings)
    engine = make_engine(settings.database_url_for(SERVICE))
    verifier = TokenVerifier(
        secret=settings.jwt_secret,
        public_key=settings.jwt_public_key,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    registration = ServiceRegistration(
        add_to_server=trained_model_pb2_grpc.add_TrainedModelServiceServicer_to_server,
        servicer=TrainedModelServicer(),
        service_name=SERVICE_NAME,
    )
    server = await create_server([registration], verifier, address=address or f"[::]:{settings.grpc_port}")
    return App(settings=settings, engine=engine, server=server)
