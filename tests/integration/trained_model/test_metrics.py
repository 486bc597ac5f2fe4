"""trained_model's Prometheus endpoint (RAVEN_METRICS_PORT), scraped over real HTTP while it serves."""

from __future__ import annotations

from pathlib import Path

import grpc

from tests.integration.training_run.test_metrics import (
    Samples,
    scrape_until,
    start_service,
    stop_service,
    value,
)


async def test_metrics_endpoint_reports_models_and_registrar_lag(
    tmp_path: Path, nats_url: str, unique: str
) -> None:
    process, grpc_port, metrics_port = start_service("services.trained_model", tmp_path, nats_url, unique)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        grpc.channel_ready_future(channel).result(timeout=60)
        channel.close()

        def refreshed(s: Samples) -> bool:
            return value(s, "raven_trained_model_registrar_lag") == 0

        samples = await scrape_until(metrics_port, refreshed)
    finally:
        output = stop_service(process)
    assert process.returncode == 0, output
    assert value(samples, "raven_trained_models", published="true") == 0, samples
    assert value(samples, "raven_trained_models", published="false") == 0
    assert (
        value(samples, "raven_trained_model_registrar_lag") == 0
    )  # the registrar consumer exists, caught up
    assert value(samples, "raven_trained_model_registrar_in_flight") == 0
    assert (value(samples, "raven_metrics_refresh_timestamp_seconds", refresher="trained_model") or 0) > 0
    assert value(samples, "raven_metrics_refresh_failures_total", refresher="trained_model") in (None, 0)
