"""The Kubernetes manifests render with `kubectl kustomize`, validate against the Kubernetes schemas,
and only set environment variables that are real settings. Logic: scripts/check_k8s.py.

kubectl is required: without it these tests FAIL (with the install command), they never skip.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_k8s", ROOT / "scripts" / "check_k8s.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_k8s", module)
    spec.loader.exec_module(module)
    return module


ck = _load_checker()


@pytest.fixture(scope="module", params=ck.OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, tuple[dict, ...]]:
    try:
        return request.param, ck.render(request.param)
    except ck.KubectlMissing as e:
        pytest.fail(str(e), pytrace=False)


def _no_problems(problems: list[str]) -> None:
    assert not problems, "\n" + "\n".join(problems)


def test_kubectl_is_installed() -> None:
    try:
        ck.kubectl()
    except ck.KubectlMissing as e:
        pytest.fail(str(e), pytrace=False)


def test_overlay_renders(overlay) -> None:
    _, objs = overlay
    kinds = {o["kind"] for o in objs}
    assert {"Namespace", "Deployment", "StatefulSet", "Service", "Job", "ConfigMap"} <= kinds, kinds


def test_objects_validate_against_kubernetes_schemas(overlay) -> None:
    _no_problems(ck.check_schemas(overlay[1]))


def test_env_vars_are_settings_fields(overlay) -> None:
    _no_problems(ck.check_settings_env(overlay[1]))


def test_overlay_policies(overlay) -> None:
    """Everything scripts/check_k8s.py checks (pod security, probes, grace periods, migrations,
    GPU placement, NATS and KEDA consistency), the two checks above included."""
    _no_problems(ck.check_overlay(overlay[0]))


def test_settings_check_catches_an_unknown_variable() -> None:
    """The env check is not vacuous: a made-up RAVEN_ variable is reported."""
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "x",
                            "image": "raven-service:1",
                            "env": [
                                {"name": "RAVEN_NOT_A_SETTING", "value": "1"},
                                {"name": "RAVEN_GRPC_PORT", "value": "1"},
                            ],
                        }
                    ]
                }
            }
        },
    }
    problems = ck.check_settings_env((dep,))
    assert len(problems) == 1 and "RAVEN_NOT_A_SETTING" in problems[0], problems


def test_scaled_object_shape_check_catches_mistakes() -> None:
    objs = ck.render("prod")
    (scaled,) = [o for o in objs if o["kind"] == "ScaledObject" and o["metadata"]["name"] == "trainer-worker"]
    namespace = scaled["metadata"]["namespace"]
    assert ck.check_scaled_object(scaled, objs, namespace) == []
    broken = {
        **scaled,
        "spec": {
            **scaled["spec"],
            "minReplicaCount": 1,
            "triggers": [{"type": "nats-jetstream", "metadata": {"stream": "OTHER", "lagThreshold": 5}}],
        },
    }
    problems = "\n".join(ck.check_scaled_object(broken, objs, namespace))
    for needle in ("minReplicaCount", "lacks consumer", "lagThreshold must be a string", "stream 'OTHER'"):
        assert needle in problems, problems


def test_deploy_script_parses() -> None:
    import subprocess

    subprocess.run(["bash", "-n", str(ROOT / "k8s" / "deploy.sh")], check=True)
