"""Each service process starts from settings alone and migrates.

It then answers health SERVING and lists itself by reflection.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from common.nats_launcher import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("module", "service"),
    [
        ("services.training_run", "raven.v1.TrainingRunService"),
        ("services.training_run", "raven.v1.DatasetService"),
        ("services.trained_model", "raven.v1.TrainedModelService"),
    ],
)
def test_process_serves_health_and_reflection(
    module: str, service: str, tmp_path: Path, nats_url: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "RAVEN_DATA_DIR": str(tmp_path),
        "RAVEN_NATS_URL": nats_url,
        "RAVEN_GRPC_PORT": str(port),
        "RAVEN_JWT_SECRET": "bootstrap-test",
        "RAVEN_SHUTDOWN_GRACE_SECONDS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", module], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=60)
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 30
        while True:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = reflection.ServerReflectionInfo(iter([request]))
        listed = {s.name for r in responses for s in r.list_services_response.service}
        assert {service, "grpc.health.v1.Health"} <= listed
        channel.close()
        db_name = module.split(".")[1] + ".db"
        assert (tmp_path / db_name).exists(), "the service migrates its SQLite schema under the data dir"
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert "shutting down" in output
