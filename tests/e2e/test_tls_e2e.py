"""End to end over mutual TLS: both servers require client certificates, the services, the worker and the
Python client present one (certificates made by the test), and a real tiny training run reaches SUCCEEDED.
Against that stack a plaintext ravenctl fails with one readable line, and a client without a certificate is
refused.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from common.auth import USER_PERMISSIONS, mint_token
from common.client import RavenClient, RavenError
from common.client.retry import NO_RETRY
from common.proto.raven.v1 import types_pb2
from common.tls import ClientTLS
from scripts.stack import ROOT, Stack
from tests.fixtures.synthetic_coco import make_dataset
from tests.fixtures.tls_certs import CertFiles, make_certs
from tests.reliability.harness import tiny_run, wait_terminal

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

RAVENCTL = str(Path(sys.executable).parent / "ravenctl")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def stack(certs: CertFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("tls-e2e")
    make_dataset(data_dir / "datasets" / "waste", n_images=8, size=128, seed=5)
    env = {**certs.client_env(with_cert=True), "RAVEN_LEASE_SECONDS": "30", "RAVEN_HEARTBEAT_SECONDS": "2"}
    with Stack(data_dir, extra_env=env, server_env=certs.server_env(mutual=True)) as running:
        yield running


def client(stack: Stack, tls: ClientTLS | None, **options: object) -> RavenClient:
    env = stack.env()
    tok = mint_token("tls-e2e", USER_PERMISSIONS, secret=stack.jwt_secret)
    return RavenClient(
        env["RAVEN_TRAINING_RUN_ADDR"], env["RAVEN_TRAINED_MODEL_ADDR"], token=tok, tls=tls, **options
    )


async def test_a_training_run_succeeds_over_mutual_tls(stack: Stack) -> None:
    async with client(stack, stack.client_tls()) as raven:
        run = await raven.create_run(tiny_run("tls-e2e", epochs=1, max_attempts=2))
        final = await wait_terminal(raven, run.name, within=780)
        assert final.state == types_pb2.SUCCEEDED, final.failure.message
        model = await raven.get_model(final.trained_model)
    assert model.training_run == run.name


def test_plaintext_ravenctl_against_the_tls_stack_fails_cleanly(stack: Stack) -> None:
    env = {k: v for k, v in stack.env().items() if not k.startswith("RAVEN_TLS_")}
    result = subprocess.run(
        [RAVENCTL, "--timeout", "5", "runs", "list"],
        env=env,
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: UNAVAILABLE: "), result.stderr
    assert "Traceback" not in result.stderr


async def test_a_client_without_a_certificate_is_refused(stack: Stack, certs: CertFiles) -> None:
    async with client(stack, ClientTLS(str(certs.ca)), retry=NO_RETRY, timeout=5) as raven:
        with pytest.raises(RavenError) as caught:
            await raven.list_runs()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
