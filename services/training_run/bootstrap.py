"""The one place that wires training_run.

Settings → engine, NATS, service, background tasks, servicer, server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from common.artifacts import ArtifactStore
from common.auth import TokenVerifier
from common.db import make_engine, make_read_session_factory, make_session_factory, upgrade_to_head_async
from common.dead_letters import DeadLetters
from common.grpc_server import RunningServer, ServiceRegistration, create_server
from common.leadership import Leadership, holder_name
from common.metrics import GaugeRefresher
from common.nats_streams import RetryPolicy, StreamNames, connect, ensure_streams
from common.proto.raven.v1 import datasets_pb2_grpc, training_run_pb2, training_run_pb2_grpc
from common.settings import Settings
from common.tasks import STEP_TIMEOUT_SECONDS, Step, Stoppable, shut_down
from common.tls import ClientTLS, ServerTLS
from services.training_run.adapters.dataset_feeds import DatasetVersionFeeds
from services.training_run.adapters.dataset_snapshot import DatasetSnapshots, SnapshotLimits
from services.training_run.adapters.outbox import OutboxRelay
from services.training_run.adapters.proto_mapping import config_to_proto, run_to_proto
from services.training_run.adapters.run_feeds import RunChangesHub, RunFeedHub
from services.training_run.adapters.run_versions import RunVersions, run_versions_for
from services.training_run.adapters.trained_models import GrpcTrainedModelClient, TrainedModelClient
from services.training_run.entrypoints import dataset_events, dataset_servicer, dead_letters, event_consumer
from services.training_run.entrypoints.dataset_events import DatasetEventConsumer
from services.training_run.entrypoints.dead_letters import DeadLetterConsumer
from services.training_run.entrypoints.event_consumer import EventConsumer
from services.training_run.entrypoints.grpc_servicer import (
    REQUIRED_PERMISSIONS,
    TrainingRunServicer,
    feed_response,
)
from services.training_run.entrypoints.metrics import metrics_refresher
from services.training_run.entrypoints.reaper import Reaper
from services.training_run.service_layer.dataset_tracking import DatasetTracking
from services.training_run.service_layer.datasets import DatasetService
from services.training_run.service_layer.discovery import Discovery
from services.training_run.service_layer.implicit_versions import ImplicitVersions
from services.training_run.service_layer.run_reads import RenderedRuns
from services.training_run.service_layer.run_tracking import LeaseSettings, RunTracking
from services.training_run.service_layer.services import TrainingRunService
from services.training_run.service_layer.unit_of_work import UnitOfWorkFactory
from services.training_run.service_layer.validation import CreateContext

SERVICE = "training_run"
MIGRATIONS = Path(__file__).parent / "adapters" / "migrations"
VERSION_TABLE = "alembic_version_training_run"
SERVICE_NAME = training_run_pb2.DESCRIPTOR.services_by_name["TrainingRunService"].full_name


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    settings: Settings
    engine: AsyncEngine
    server: RunningServer
    nc: NATS
    names: StreamNames
    service: TrainingRunService
    tracking: RunTracking
    relay: OutboxRelay
    consumer: EventConsumer
    dead_letters: DeadLetterConsumer
    reaper: Reaper
    feeds: RunFeedHub
    changes: RunChangesHub
    trained_models: TrainedModelClient
    versions: RunVersions
    reads: RenderedRuns
    metrics: GaugeRefresher
    datasets: DatasetService
    dataset_consumer: DatasetEventConsumer
    ordered: Leadership  # runs the two consumers above on one replica at a time

    @property
    def port(self) -> int:
        return self.server.port

    async def close(self, grace: float = 0, step_timeout: float = STEP_TIMEOUT_SECONDS) -> None:
        """Stop serving, then the background tasks, then close connections (the DB holds all state).

        Watch streams never end by themselves: they are ended first (UNAVAILABLE, clients reconnect to
        another replica) so the server's ``grace`` goes to unary calls. Each step is bounded by
        ``step_timeout`` (the server's by ``grace`` more); one that overruns is logged and abandoned.
        """

        def open_streams() -> dict[str, int]:
            return {**self.server.open_streams(), **self.feeds.open_streams(), **self.changes.open_streams()}

        steps = [
            Step("health", self.server.health.enter_graceful_shutdown),
            Step("watch streams", self._close_feeds, open_streams),
            Step("grpc server", lambda: self.server.stop(grace), open_streams, timeout=grace + step_timeout),
            *(Step(name, task.stop) for name, task in self._tasks()),
            Step("trained_model client", self.trained_models.close),
            Step("version reads", self.versions.close),
            Step("nats", self._close_nats),
            Step("database", self.engine.dispose),
        ]
        await shut_down(SERVICE, steps, step_timeout)

    def _tasks(self) -> list[tuple[str, Stoppable]]:
        return [
            ("metrics", self.metrics),
            ("reaper", self.reaper),
            ("dead letter consumer", self.dead_letters),
            ("event consumers (lease)", self.ordered),
            ("outbox relay", self.relay),
        ]

    async def _close_feeds(self) -> None:
        await self.feeds.close()
        await self.changes.close()

    async def _close_nats(self) -> None:
        if self.nc.is_closed:
            return
        # Every publish is acked or left unsent in the outbox, so nothing needs draining (a drain can wait
        # 30 s on a cancelled pull request).
        with contextlib.suppress(Exception):
            await self.nc.flush(timeout=1)
        await self.nc.close()


def ordered_consumers(
    js: JetStreamContext,
    names: StreamNames,
    settings: Settings,
    port: int,
    *consumers: EventConsumer | DatasetEventConsumer,
) -> Leadership:
    """Run and dataset events are applied in stream order, so by one replica at a time (each replica would
    otherwise get its own share of the durable consumers' messages and apply them concurrently)."""

    async def on_gain() -> None:
        for consumer in consumers:
            await consumer.start()

    async def on_loss() -> None:
        for consumer in consumers:
            await consumer.stop()

    return Leadership(
        js, names, "training-run-events", holder_name(port), on_gain, on_loss,
        ttl=settings.ordered_consumer_lease_seconds, replicas=settings.stream_replicas,
    )  # fmt: skip


async def migrate(settings: Settings) -> None:
    await upgrade_to_head_async(MIGRATIONS, settings.database_url_for(SERVICE), VERSION_TABLE)


async def build_app(
    settings: Settings,
    *,
    address: str | None = None,
    trained_models: TrainedModelClient | None = None,
    names: StreamNames | None = None,
    clock: Callable[[], datetime] = utc_now,
    registration_timeout: timedelta = timedelta(minutes=15),
    start_relay: bool = True,
    start_consumer: bool = True,
    start_reaper: bool = True,
    snapshot_limits: SnapshotLimits | None = None,
    metrics_interval: float = 5.0,
) -> App:
    """Migrate, connect, start background tasks and the gRPC server.

    Tests pass their own ``names`` (isolated streams), ``trained_models`` client and ``clock``, and may leave
    a background task stopped (``start_relay=False`` simulates a crash between commit and publish).
    """
    await migrate(settings)
    names = names or StreamNames.from_settings(settings)
    engine = make_engine(settings.database_url_for(SERVICE))
    nc = await connect(settings.nats_url, f"training_run-{settings.grpc_port}")
    js = nc.jetstream()
    await ensure_streams(js, names, settings.stream_replicas)
    uow = UnitOfWorkFactory(make_session_factory(engine), names, clock, make_read_session_factory(engine))
    relay = OutboxRelay(uow.session_factory, nc, js, clock)
    uow.after_commit = relay.notify
    trained_models = trained_models or GrpcTrainedModelClient(
        settings.trained_model_addr, tls=ClientTLS.from_settings(settings)
    )
    snapshots = DatasetSnapshots(
        ArtifactStore(settings.artifact_root), settings.dataset_root, snapshot_limits or SnapshotLimits()
    )
    service = TrainingRunService(
        uow,
        CreateContext(
            settings.dataset_root,
            trained_models,
            settings.backbone_checkpoint,
            artifacts=ArtifactStore(settings.artifact_root),
        ),
        clock,
        ImplicitVersions(uow, snapshots.from_reference, clock),
    )
    leases = LeaseSettings(
        lease=timedelta(seconds=settings.lease_seconds),
        heartbeat=timedelta(seconds=settings.heartbeat_seconds),
        registration_timeout=registration_timeout,
        startup_grace=timedelta(seconds=settings.lease_startup_grace_seconds),
    )
    tracking = RunTracking(uow, leases, clock)
    policy = RetryPolicy.from_settings(settings)
    consumer = EventConsumer(
        js, names, tracking.apply_event, DeadLetters(js, names, event_consumer.DURABLE, policy, clock)
    )
    dataset_tracking = DatasetTracking(uow, clock, ArtifactStore(settings.artifact_root))
    dead_letter_consumer = DeadLetterConsumer(
        js,
        names,
        tracking.fail_dead_lettered,
        DeadLetters(js, names, dead_letters.DURABLE, policy, clock),
        clock,
        fail_version=dataset_tracking.fail_dead_lettered,
    )
    datasets = DatasetService(uow, clock)
    dataset_consumer = DatasetEventConsumer(
        js, names, dataset_tracking.apply,
        DeadLetters(js, names, dataset_events.DURABLE, policy, clock),
    )  # fmt: skip
    reaper = Reaper(tracking.reap, settings.reaper_interval_seconds)
    feeds = RunFeedHub(js, names, feed_response(service))
    changes = RunChangesHub(nc, names, lambda event: service.snapshot(event.run_id))
    if start_relay:
        relay.start()  # publishes whatever an earlier process committed but did not send
    if start_consumer:
        await dead_letter_consumer.start()
    if start_reaper:
        reaper.start()
    metrics = metrics_refresher(service, js, names, feeds, changes, metrics_interval)
    metrics.start()
    verifier = TokenVerifier(
        secret=settings.jwt_secret,
        public_key=settings.jwt_public_key,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        revoked_ids=settings.revoked_token_ids(),
    )
    versions = await run_versions_for(engine)
    reads = RenderedRuns(service, versions, partial(run_to_proto, with_config=False), config_to_proto)
    discovery = Discovery(uow, clock, pretrained_backbone=bool(settings.backbone_checkpoint))
    registration = ServiceRegistration(
        add_to_server=training_run_pb2_grpc.add_TrainingRunServiceServicer_to_server,
        servicer=TrainingRunServicer(service, tracking, feeds, changes, reads, discovery),
        service_name=SERVICE_NAME,
        required_permissions=REQUIRED_PERMISSIONS,
    )
    dataset_registration = ServiceRegistration(
        add_to_server=datasets_pb2_grpc.add_DatasetServiceServicer_to_server,
        servicer=dataset_servicer.DatasetServicer(datasets, snapshots, DatasetVersionFeeds(js, names)),
        service_name=dataset_servicer.SERVICE_NAME,
        required_permissions=dataset_servicer.REQUIRED_PERMISSIONS,
    )
    server = await create_server(
        [registration, dataset_registration],
        verifier,
        address=address or f"[::]:{settings.grpc_port}",
        tls=ServerTLS.from_settings(settings),
        health_port=settings.health_port,
    )
    ordered = ordered_consumers(js, names, settings, server.port, consumer, dataset_consumer)
    if start_consumer:
        try:
            await ordered.start()
        except BaseException:
            await server.stop(0)
            raise
    return App(
        settings=settings,
        engine=engine,
        server=server,
        nc=nc,
        names=names,
        service=service,
        tracking=tracking,
        relay=relay,
        consumer=consumer,
        dead_letters=dead_letter_consumer,
        reaper=reaper,
        feeds=feeds,
        changes=changes,
        trained_models=trained_models,
        versions=versions,
        reads=reads,
        metrics=metrics,
        datasets=datasets,
        dataset_consumer=dataset_consumer,
        ordered=ordered,
    )
