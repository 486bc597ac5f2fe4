"""TLS and mTLS on the real servers, with certificates made by the test (tests/fixtures/tls_certs.py).

A stack whose servers require client certificates (mTLS) serves clients that present one, and the two
services reach each other over it; a plaintext client, a client trusting another CA and a client without a
certificate are refused with UNAVAILABLE and a readable message (the client library and ravenctl). A server
picks up a renewed certificate on new connections without restarting.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from typer.testing import CliRunner, Result

from common.auth import TokenVerifier
from common.client import RavenClient, RavenError
from common.client.retry import NO_RETRY
from common.grpc_server import create_server
from common.nats_launcher import LocalNats
from common.proto.raven.v1 import trained_model_pb2, training_run_pb2
from common.tls import ClientTLS, ServerTLS, TLSFileError, sync_channel
from services.cli.main import app
from tests.fixtures.tls_certs import CertFiles, issue, make_ca, make_certs
from tests.helpers import JWT_SECRET, token
from tests.security.stack import Stack, free_port


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def mtls_stack(
    certs: CertFiles, nats_server: LocalNats, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    settings = {
        "tls_cert_file": str(certs.server_cert),
        "tls_key_file": str(certs.server_key),
        "tls_client_ca_file": str(certs.ca),
        "tls_ca_file": str(certs.ca),
        "tls_client_cert_file": str(certs.client_cert),
        "tls_client_key_file": str(certs.client_key),
    }
    client = ClientTLS(str(certs.ca), str(certs.client_cert), str(certs.client_key))
    stack = Stack(tmp_path_factory.mktemp("mtls"), nats_server.url, tls_settings=settings, client_tls=client)
    yield stack.start()
    stack.stop()


def client(stack: Stack, tls: ClientTLS | None) -> RavenClient:
    addrs = (f"127.0.0.1:{stack.tr_port}", f"127.0.0.1:{stack.tm_port}")
    return RavenClient(*addrs, token=token("alice"), tls=tls, retry=NO_RETRY, timeout=10)


def refusal(stack: Stack, tls: ClientTLS | None) -> RavenError:
    async def attempt() -> None:
        async with client(stack, tls) as raven:
            await raven.list_runs()

    with pytest.raises(RavenError) as caught:
        stack.call(attempt())
    return caught.value


def test_mtls_stack_serves_a_client_with_a_certificate_and_the_services_call_each_other(
    mtls_stack: Stack, certs: CertFiles
) -> None:
    assert mtls_stack.healthy()
    good = ClientTLS(str(certs.ca), str(certs.client_cert), str(certs.client_key))

    async def over_tls() -> list[training_run_pb2.TrainingRun]:
        async with client(mtls_stack, good) as raven:
            return [run async for run in raven.iter_runs()]

    assert isinstance(mtls_stack.call(over_tls()), list)
    # training_run asks trained_model about the base model (over mTLS): an answer, not UNAVAILABLE.
    missing = f"trainedModels/{uuid.uuid4()}"
    with pytest.raises(grpc.RpcError) as caught:
        mtls_stack.create_run(mtls_stack.who.user, base_model=missing, model_template="")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    # trained_model asks training_run for active runs before a delete (over mTLS): the delete goes through.
    model = mtls_stack.import_model(mtls_stack.who.user, "tls import")
    mtls_stack.models.DeleteTrainedModel(
        trained_model_pb2.DeleteTrainedModelRequest(name=model.name), metadata=mtls_stack.who.user, timeout=30
    )


def test_plaintext_client_against_tls_fails_cleanly(mtls_stack: Stack) -> None:
    error = refusal(mtls_stack, None)
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.message and "Traceback" not in error.message


def test_client_trusting_another_ca_is_refused(mtls_stack: Stack, certs: CertFiles) -> None:
    error = refusal(mtls_stack, ClientTLS(str(certs.other_ca), str(certs.client_cert), str(certs.client_key)))
    assert error.code == grpc.StatusCode.UNAVAILABLE, error


def test_mtls_refuses_a_client_without_a_certificate(mtls_stack: Stack, certs: CertFiles) -> None:
    error = refusal(mtls_stack, ClientTLS(str(certs.ca)))
    assert error.code == grpc.StatusCode.UNAVAILABLE, error


def test_ravenctl_plaintext_against_tls_exits_2_with_one_error_line(mtls_stack: Stack) -> None:
    result = ravenctl(mtls_stack, {})
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: UNAVAILABLE: "), result.stderr
    assert "pass their CA with --ca-file" in result.stderr  # the handshake itself only says "Socket closed"
    assert "Traceback" not in result.stderr


def test_ravenctl_with_ca_and_client_certificate_lists_runs(mtls_stack: Stack, certs: CertFiles) -> None:
    env = {"RAVEN_TLS_CLIENT_CERT_FILE": str(certs.client_cert), "RAVEN_TLS_CLIENT_KEY_FILE": None}
    result = ravenctl(mtls_stack, env, "--ca-file", str(certs.ca), "--client-key", str(certs.client_key))
    assert result.exit_code == 0, result.stderr


def test_ravenctl_names_an_unreadable_ca_file(mtls_stack: Stack, tmp_path: Path) -> None:
    result = ravenctl(mtls_stack, {}, "--ca-file", str(tmp_path / "absent.pem"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: RAVEN_TLS_CA_FILE: cannot read "), result.stderr


def ravenctl(stack: Stack, env: dict[str, str | None], *options: str) -> Result:
    base = [
        "--training-run-addr",
        f"127.0.0.1:{stack.tr_port}",
        "--trained-model-addr",
        f"127.0.0.1:{stack.tm_port}",
        "--token",
        token("alice"),
        "--timeout",
        "5",
    ]
    clean: dict[str, str | None] = {
        "RAVEN_JWT_SECRET": JWT_SECRET,
        "RAVEN_TLS_CA_FILE": None,
        "RAVEN_TLS_CLIENT_CERT_FILE": None,
        "RAVEN_TLS_CLIENT_KEY_FILE": None,
    }
    # The calls run on the stack's loop (one grpc.aio poller per process), as in tests/integration/cli.
    return CliRunner().invoke(
        app, [*base, *options, "-o", "json", "runs", "list"], obj=stack.call, env={**clean, **env}
    )


# ---- one server, no services: TLS alone, and certificate rotation -----------------------------------------


def health_status(port: int, tls: ClientTLS | None) -> int:
    with sync_channel(f"127.0.0.1:{port}", tls) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return int(answer.status)


async def test_server_reloads_a_renewed_certificate_without_restarting(tmp_path: Path) -> None:
    first = make_certs(tmp_path / "first")
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(first.server_cert, live / "tls.crt")
    shutil.copy(first.server_key, live / "tls.key")
    tls = ServerTLS(str(live / "tls.crt"), str(live / "tls.key"))
    running = await create_server([], TokenVerifier(secret=JWT_SECRET), address="127.0.0.1:0", tls=tls)
    try:
        serving = health_pb2.HealthCheckResponse.SERVING
        assert await asyncio.to_thread(health_status, running.port, ClientTLS(str(first.ca))) == serving
        renewed_ca = make_ca(tmp_path, "renewed-ca")
        cert, key = issue(renewed_ca, tmp_path, "renewed-server", server=True)
        (live / "next.crt").write_bytes(cert.read_bytes())
        (live / "next.key").write_bytes(key.read_bytes())
        (live / "next.crt").replace(live / "tls.crt")
        (live / "next.key").replace(live / "tls.key")
        assert (
            await asyncio.to_thread(health_status, running.port, ClientTLS(str(renewed_ca.file))) == serving
        )
        with pytest.raises(grpc.RpcError) as caught:
            await asyncio.to_thread(health_status, running.port, ClientTLS(str(first.ca)))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop(0)


async def test_a_missing_server_certificate_is_named() -> None:
    tls = ServerTLS("/nonexistent/tls.crt", "/nonexistent/tls.key")
    with pytest.raises(TLSFileError, match=r"RAVEN_TLS_CERT_FILE: cannot read /nonexistent/tls\.crt"):
        await create_server([], TokenVerifier(secret=JWT_SECRET), address="127.0.0.1:0", tls=tls)


async def test_the_plaintext_health_port_serves_health_only(tmp_path: Path) -> None:
    """kubelet's gRPC probes cannot speak TLS: RAVEN_HEALTH_PORT answers them, and nothing else."""
    certs = make_certs(tmp_path)
    health_port = free_port()
    running = await create_server(
        [],
        TokenVerifier(secret=JWT_SECRET),
        address="127.0.0.1:0",
        tls=ServerTLS(str(certs.server_cert), str(certs.server_key)),
        health_port=health_port,
    )
    try:
        serving = health_pb2.HealthCheckResponse.SERVING
        assert await asyncio.to_thread(health_status, health_port, None) == serving
        with pytest.raises(grpc.RpcError) as caught:
            await asyncio.to_thread(list_services, health_port)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED  # no reflection (nor any service) there
    finally:
        await running.stop(0)


def list_services(port: int) -> None:
    with sync_channel(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        for _ in stub.ServerReflectionInfo(iter([request]), timeout=5):
            pass
