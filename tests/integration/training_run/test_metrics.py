"""The service process's Prometheus endpoint (RAVEN_METRICS_PORT), scraped over real HTTP while it serves."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from common.nats_launcher import free_port
from common.nats_streams import StreamNames, connect, ensure_worker_consumer
from common.proto.raven.v1 import training_run_pb2, training_run_pb2_grpc, types_pb2
from tests.helpers import JWT_SECRET, bearer, token
from tests.integration.training_run.conftest import write_dataset
from tests.integration.training_run.datasets_support import preparation_intake

ROOT = Path(__file__).resolve().parents[3]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape_until(port: int, ready: Callable[[Samples], bool], seconds: float = 30) -> Samples:
    """Scrapes until ``ready`` holds (query gauges refresh every 5 s); the last scrape if it never does."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        samples = await asyncio.to_thread(scrape, port)
        if ready(samples) or asyncio.get_running_loop().time() > deadline:
            return samples
        await asyncio.sleep(0.5)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def start_service(
    module: str, tmp_path: Path, nats_url: str, unique: str, **env: str
) -> tuple[subprocess.Popen[bytes], int, int]:
    grpc_port, metrics_port = free_port(), free_port()
    environment = {
        **os.environ,
        "RAVEN_DATA_DIR": str(tmp_path),
        "RAVEN_NATS_URL": nats_url,
        "RAVEN_GRPC_PORT": str(grpc_port),
        "RAVEN_METRICS_PORT": str(metrics_port),
        "RAVEN_JWT_SECRET": JWT_SECRET,
        "RAVEN_JOBS_STREAM": f"MJ_{unique}",
        "RAVEN_EVENTS_STREAM": f"ME_{unique}",
        "RAVEN_SUBJECT_PREFIX": f"m{unique}",
        "RAVEN_SHUTDOWN_GRACE_SECONDS": "1",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return process, grpc_port, metrics_port


def stop_service(process: subprocess.Popen[bytes]) -> str:
    process.terminate()
    return process.communicate(timeout=30)[0].decode(errors="replace")


@pytest.fixture
def training_run_process(tmp_path: Path, nats_url: str, unique: str) -> Iterator[tuple[int, int, str]]:
    dataset = write_dataset(tmp_path / "datasets")
    process, grpc_port, metrics_port = start_service(
        "services.training_run",
        tmp_path,
        nats_url,
        unique,
        RAVEN_DATASET_ROOT=f"file://{tmp_path / 'datasets'}",
    )
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        grpc.channel_ready_future(channel).result(timeout=60)
        channel.close()
        yield grpc_port, metrics_port, dataset
    finally:
        output = stop_service(process)
    assert process.returncode == 0, output


async def test_metrics_endpoint_reports_runs_queue_outbox_and_watchers(
    training_run_process: tuple[int, int, str],
) -> None:
    grpc_port, metrics_port, dataset = training_run_process
    user = bearer(token("alice"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = training_run_pb2_grpc.TrainingRunServiceStub(channel)
        run = await stub.CreateTrainingRun(
            training_run_pb2.CreateTrainingRunRequest(
                training_run=training_run_pb2.TrainingRun(
                    display_name="metrics", dataset=dataset, model_template="rtmdet_tiny",
                    hyperparameters=types_pb2.Hyperparameters(epochs=1),
                )
            ),
            metadata=user,
        )  # fmt: skip
        await stub.GetTrainingRun(training_run_pb2.GetTrainingRunRequest(name=run.name), metadata=user)
        watch = stub.WatchTrainingRun(training_run_pb2.WatchTrainingRunRequest(name=run.name), metadata=user)
        first = await watch.read()  # the replayed PENDING transition: the stream is open
        assert first.event.state_changed.to_state == types_pb2.PENDING

        def settled(s: Samples) -> bool:
            return (
                value(s, "raven_training_runs", state="PENDING") == 1
                and value(s, "raven_training_run_jobs_waiting") == 0
                and value(s, "raven_training_run_outbox_unsent") == 0
            )

        samples = await scrape_until(metrics_port, settled)
        watch.cancel()

    assert value(samples, "raven_training_runs", state="PENDING") == 1, samples
    # runs per state and phase, every pair reported (zeros included) so a vanished pair reads 0, not stale
    assert value(samples, "raven_training_runs_by_phase", state="PENDING", phase="UNSPECIFIED") == 1
    assert value(samples, "raven_training_runs_by_phase", state="RUNNING", phase="TRAINING") == 0
    oldest = value(samples, "raven_training_run_oldest_pending_seconds")
    assert oldest is not None and 0 <= oldest < 120, samples
    for state in ("RUNNING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED"):
        assert value(samples, "raven_training_runs", state=state) == 0
    # no training job yet: the run waits for its dataset version (nobody prepares it here); the gauge counts
    # training jobs only (it once counted the stream's dataset preparation job too)
    assert value(samples, "raven_training_run_jobs_waiting") == 0
    assert value(samples, "raven_training_run_jobs_in_flight") == 0
    assert value(samples, "raven_training_run_outbox_unsent") == 0  # the relay published job and event
    assert value(samples, "raven_training_run_events_lag") == 0  # the tracker consumed the PENDING event
    assert value(samples, "raven_training_run_events_in_flight") == 0
    assert value(samples, "raven_training_run_watchers", rpc="WatchTrainingRun") == 1
    assert value(samples, "raven_training_run_watchers", rpc="WatchTrainingRuns") == 0
    assert value(samples, "raven_training_run_watch_feeds") == 1
    assert (value(samples, "raven_metrics_refresh_timestamp_seconds", refresher="training_run") or 0) > 0
    assert value(samples, "raven_metrics_refresh_failures_total", refresher="training_run") in (None, 0)
    method = "/raven.v1.TrainingRunService/GetTrainingRun"
    assert value(samples, "raven_grpc_requests_total", method=method, code="OK") == 1
    assert value(samples, "raven_grpc_request_seconds_count", method=method) == 1


async def test_jobs_waiting_counts_the_queue_of_every_run_size(
    training_run_process: tuple[int, int, str], nats_url: str, unique: str, tmp_path: Path
) -> None:
    """A 1-GPU and two 2-GPU runs: each size's training jobs counted, before and after a 2-GPU worker's
    consumer exists (the gauge read the 1-GPU consumer alone, and before it existed every job of the stream,
    dataset preparation included). The worker's real preparation intake readies the runs' dataset version."""
    grpc_port, metrics_port, dataset = training_run_process
    user = bearer(token("alice"))
    names = StreamNames(jobs=f"MJ_{unique}", events=f"ME_{unique}", prefix=f"m{unique}")
    nc = await connect(nats_url, "metrics-test")
    try:
        async with (
            preparation_intake(nc, names, f"file://{tmp_path / 'artifacts'}", "w-prep"),
            grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
        ):
            stub = training_run_pb2_grpc.TrainingRunServiceStub(channel)
            for gpus in (1, 2, 2):
                await stub.CreateTrainingRun(
                    training_run_pb2.CreateTrainingRunRequest(
                        training_run=training_run_pb2.TrainingRun(
                            display_name=f"size {gpus}", dataset=dataset, model_template="rtmdet_tiny",
                            hyperparameters=types_pb2.Hyperparameters(epochs=1, gpus=gpus),
                        )
                    ),
                    metadata=user,
                )  # fmt: skip

            def counted(s: Samples) -> bool:
                return value(s, "raven_training_run_jobs_waiting") == 3

            samples = await scrape_until(metrics_port, counted, seconds=60)
        assert value(samples, "raven_training_run_jobs_waiting") == 3, samples
        assert value(samples, "raven_training_run_jobs_waiting_by_gpus", gpus="1") == 1
        assert value(samples, "raven_training_run_jobs_waiting_by_gpus", gpus="2") == 2
        assert value(samples, "raven_training_run_jobs_waiting_by_gpus", gpus="4") == 0

        # a 2-GPU worker attaches (its durable consumer) and takes one job without acknowledging it yet
        js = nc.jetstream()
        durable = await ensure_worker_consumer(js, names, gpus=2)
        sub = await js.pull_subscribe_bind(durable, names.jobs)
        taken = await sub.fetch(1, timeout=10)
        assert len(taken) == 1

        def moved(s: Samples) -> bool:
            return value(s, "raven_training_run_jobs_in_flight_by_gpus", gpus="2") == 1

        samples = await scrape_until(metrics_port, moved)
        assert value(samples, "raven_training_run_jobs_waiting_by_gpus", gpus="2") == 1, samples
        assert value(samples, "raven_training_run_jobs_in_flight_by_gpus", gpus="2") == 1
        assert value(samples, "raven_training_run_jobs_waiting") == 2
        assert value(samples, "raven_training_run_jobs_in_flight") == 1
        await taken[0].nak()
    finally:
        await nc.close()
