"""trained_model's Prometheus gauges beyond the per-RPC ones: models in the registry, registrar lag."""

from __future__ import annotations

from nats.js import JetStreamContext
from prometheus_client import Gauge

from common.metrics import GaugeRefresher, consumer_backlog
from common.nats_streams import StreamNames
from services.trained_model.service_layer.registry import ModelRegistry

MODELS = Gauge("raven_trained_models", "Trained models in the registry (whole database)", ["published"])
REGISTRAR_LAG = Gauge(
    "raven_trained_model_registrar_lag",
    "Run events not yet delivered to the registrar consumer (num_pending); -1 without a registrar",
)
CONFIGS_FAILING_GATE = Gauge(
    "raven_trained_models_failing_config_gate",
    "Models whose stored config fails the config gate (checked at startup; they cannot be published or used "
    "as a base)",
)
REGISTRAR_IN_FLIGHT = Gauge(
    "raven_trained_model_registrar_in_flight", "Run events delivered to the registrar, not yet acknowledged"
)


def metrics_refresher(
    registry: ModelRegistry,
    js: JetStreamContext | None,
    names: StreamNames,
    durable: str,
    interval: float = 5.0,
) -> GaugeRefresher:
    async def refresh() -> None:
        async with registry.uow() as uow:
            counts = await uow.models.count_by_published()
        MODELS.labels("true").set(counts[True])
        MODELS.labels("false").set(counts[False])
        backlog = None if js is None else await consumer_backlog(js, names.events, durable)
        REGISTRAR_LAG.set(-1 if backlog is None else backlog.pending)
        REGISTRAR_IN_FLIGHT.set(0 if backlog is None else backlog.ack_pending)

    return GaugeRefresher("trained_model", refresh, interval)
