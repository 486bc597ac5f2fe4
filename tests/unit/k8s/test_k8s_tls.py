"""TLS in the manifests: prod runs every gRPC server behind a cert-manager Certificate, dev stays
plaintext, and the TLS checks (scripts/check_k8s_tls.py) catch the mistakes they exist for."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scripts.check_k8s_tls import CERTIFICATE, check_certificate, check_tls
from tests.unit.k8s.test_k8s_manifests import ck

Objs = tuple[dict[str, Any], ...]


def rendered(overlay: str) -> Objs:
    try:
        return tuple(copy.deepcopy(list(ck.render(overlay))))
    except ck.KubectlMissing as e:
        pytest.fail(str(e), pytrace=False)


def main_container(objs: Objs, name: str) -> dict[str, Any]:
    dep = ck.find(objs, "Deployment", name)[0]
    return dict(dep["spec"]["template"]["spec"]["containers"][0])


def env_names(objs: Objs, name: str) -> set[str]:
    return set(ck.env_of(main_container(objs, name), objs))


def test_prod_serves_tls_from_cert_manager_certificates() -> None:
    objs = rendered("prod")
    certificates = [o for o in objs if (o["apiVersion"], o["kind"]) == CERTIFICATE]
    assert {c["spec"]["secretName"] for c in certificates} == {"training-run-tls", "trained-model-tls"}
    for name in ("training-run", "trained-model"):
        assert {"RAVEN_TLS_CERT_FILE", "RAVEN_TLS_KEY_FILE", "RAVEN_TLS_CA_FILE"} <= env_names(objs, name)
    assert "RAVEN_TLS_CA_FILE" in env_names(objs, "trainer-worker")
    assert not {"RAVEN_TLS_CERT_FILE", "RAVEN_TLS_KEY_FILE"} & env_names(objs, "trainer-worker")
    assert check_tls(objs, ck.env_of) == []


def test_dev_stays_plaintext() -> None:
    objs = rendered("dev")
    assert not [o for o in objs if o["kind"] == "Certificate"]
    for name in ("training-run", "trained-model", "trainer-worker"):
        assert not {n for n in env_names(objs, name) if n.startswith("RAVEN_TLS_")}


def test_certificate_shape_check_reports_what_is_wrong() -> None:
    good = next(o for o in rendered("prod") if o["kind"] == "Certificate")
    assert check_certificate(good) == []
    bad = copy.deepcopy(good)
    del bad["spec"]["issuerRef"]
    bad["spec"]["duration"] = "90 days"
    bad["spec"]["usages"] = ["server auth", "serverauth"]
    bad["spec"]["secretNmae"] = "typo"
    problems = "\n".join(check_certificate(bad))
    for expected in ("issuerRef.name is required", "'90 days'", "unknown usage 'serverauth'", "'secretNmae'"):
        assert expected in problems


def _worker_volume(objs: Objs) -> dict[str, Any]:
    spec = ck.find(objs, "Deployment", "trainer-worker")[0]["spec"]["template"]["spec"]
    return next(v for v in spec["volumes"] if v["name"] == "tls-ca")


def test_a_worker_mounting_a_server_key_is_reported() -> None:
    objs = rendered("prod")
    del _worker_volume(objs)["secret"]["items"]  # the whole Secret: tls.key included
    assert any("mounts the private key" in p for p in check_tls(objs, ck.env_of))


def test_a_client_without_the_ca_is_reported() -> None:
    objs = rendered("prod")
    container = ck.find(objs, "Deployment", "trainer-worker")[0]["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [e for e in container["env"] if e["name"] != "RAVEN_TLS_CA_FILE"]
    assert any("RAVEN_TLS_CA_FILE is not set" in p for p in check_tls(objs, ck.env_of))


def test_tls_server_probes_must_use_the_plaintext_health_port() -> None:
    objs = rendered("prod")
    dep = ck.find(objs, "Deployment", "training-run")[0]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["grpc"]["port"] = 50051
    problems = ck.check_grpc_server(dep, objs, "training_run")
    assert any("readinessProbe must be a grpc probe on port 8081" in p for p in problems)
    container["env"] = [e for e in container["env"] if e["name"] != "RAVEN_HEALTH_PORT"]
    assert any("without RAVEN_HEALTH_PORT" in p for p in check_tls(objs, ck.env_of))
