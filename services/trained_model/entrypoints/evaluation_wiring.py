"""The evaluation half of trained_model's wiring, called by ``bootstrap.build_app`` (kept apart so the
bootstrap stays one screen): the service layer, its NATS job queue and report tracker, the servicer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from common.dead_letters import DeadLetters
from common.grpc_server import ServiceRegistration
from common.leadership import Leadership, holder_name
from common.nats_streams import RetryPolicy, StreamNames
from common.proto.raven.v1 import evaluations_pb2, evaluations_pb2_grpc
from common.settings import Settings
from common.tls import ClientTLS
from services.trained_model.adapters.dataset_versions import DatasetVersions, GrpcDatasetVersions
from services.trained_model.adapters.evaluation_jobs import NatsEvaluationJobs
from services.trained_model.entrypoints.evaluation_claims import EvaluationClaimResponder
from services.trained_model.entrypoints.evaluation_servicer import REQUIRED_PERMISSIONS, EvaluationServicer
from services.trained_model.entrypoints.evaluation_tracker import DURABLE, EvaluationTracker
from services.trained_model.service_layer.evaluations import Evaluations
from services.trained_model.service_layer.unit_of_work import UnitOfWorkFactory

SERVICE_NAME = evaluations_pb2.DESCRIPTOR.services_by_name["EvaluationService"].full_name


@dataclass
class EvaluationParts:
    evaluations: Evaluations
    versions: DatasetVersions
    tracker: EvaluationTracker | None
    registration: ServiceRegistration
    claims: EvaluationClaimResponder | None = None
    tracker_lease: Leadership | None = None  # runs the tracker on one replica at a time

    async def stop(self) -> None:
        if self.claims is not None:
            await self.claims.stop()
        if self.tracker_lease is not None:
            await self.tracker_lease.stop()

    async def close(self) -> None:
        await self.versions.close()


async def build_evaluations(
    settings: Settings,
    uow: UnitOfWorkFactory,
    clock: Callable[[], datetime],
    nc: NATS | None,
    js: JetStreamContext | None,
    names: StreamNames,
    *,
    versions: DatasetVersions | None = None,
    durable: str = DURABLE,
) -> EvaluationParts:
    """Starts the report tracker (and relay) and the workers' claim responder when NATS is there; without it
    evaluations are only read."""
    versions = versions or GrpcDatasetVersions(
        settings.training_run_addr,
        secret=settings.jwt_secret,
        private_key=settings.jwt_private_key,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        tls=ClientTLS.from_settings(settings),
    )
    jobs = NatsEvaluationJobs(nc, js, names) if nc is not None and js is not None else None
    evaluations = Evaluations(uow, versions, jobs, clock)
    tracker, lease = None, None
    if js is not None:
        dead_letters = DeadLetters(js, names, durable, RetryPolicy.from_settings(settings), clock)
        tracker = EvaluationTracker(js, names, evaluations, dead_letters)
        # An evaluation's reports are applied in stream order (started before its result): by one replica
        # at a time, each replica would otherwise get its own share of the durable's messages.
        lease = Leadership(
            js, names, durable, holder_name(settings.grpc_port), tracker.start, tracker.stop,
            ttl=settings.ordered_consumer_lease_seconds, replicas=settings.stream_replicas,
        )  # fmt: skip
        await lease.start()
    claims = None
    if nc is not None:
        claims = EvaluationClaimResponder(nc, names, evaluations)
        await claims.start()
    registration = ServiceRegistration(
        add_to_server=evaluations_pb2_grpc.add_EvaluationServiceServicer_to_server,
        servicer=EvaluationServicer(evaluations),
        service_name=SERVICE_NAME,
        required_permissions=REQUIRED_PERMISSIONS,
    )
    return EvaluationParts(evaluations, versions, tracker, registration, claims, lease)
