"""The worker-credential rule of scripts/check_k8s.py (scripts/k8s_workers.py) holds on both overlays and
fires on every way a worker pod could reach the JWT signing key.

kubectl is required (see test_k8s_manifests.py): without it these tests fail, they never skip.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import Any

import pytest

from common.auth import mint_token
from tests.unit.k8s.test_k8s_manifests import ck

Manifest = dict[str, Any]


def _worker_and_objs(overlay: str) -> tuple[Manifest, tuple[Manifest, ...]]:
    try:
        objs = ck.render(overlay)
    except ck.KubectlMissing as e:
        pytest.fail(str(e), pytrace=False)
    (worker,) = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "trainer-worker"]
    return worker, objs


def _secret_name(objs: tuple[Manifest, ...], base: str) -> str:
    found = ck.by_base_name(objs, "Secret", base)
    return str(found["metadata"]["name"]) if found else base  # prod: provisioned out of band


def _problems(worker: Manifest, objs: tuple[Manifest, ...]) -> list[str]:
    return ck.check_worker_credentials(worker, objs, ck.secret_template_keys())


@pytest.mark.parametrize("overlay", ck.OVERLAYS)
def test_the_worker_pods_of_both_overlays_hold_only_a_worker_token(overlay: str) -> None:
    worker, objs = _worker_and_objs(overlay)
    assert _problems(worker, objs) == []
    main = worker["spec"]["template"]["spec"]["containers"][0]
    assert "RAVEN_JWT_SECRET" not in {e["name"] for e in main.get("env", [])}
    workers = [o for o in objs if o["kind"] in ck.POD_KINDS and ck.is_worker_pod(o)]
    sized = {"prod": ["trainer-worker-gpus-4"], "dev": []}[overlay]  # a worker per run size (docs/scaling.md)
    assert [o["metadata"]["name"] for o in workers] == ["trainer-worker", *sized]
    assert all(_problems(w, objs) == [] for w in workers)


def _env(name: str, key: str = "") -> Callable[[Manifest, str], None]:
    """A variable from ``key`` of the services' Secret, or a literal when no key is given."""

    def add(spec: Manifest, secrets: str) -> None:
        source = {"valueFrom": {"secretKeyRef": {"name": secrets, "key": key}}} if key else {"value": "x"}
        spec["containers"][0].setdefault("env", []).append({"name": name, **source})

    return add


def _env_from(spec: Manifest, secrets: str) -> None:
    spec["containers"][0].setdefault("envFrom", []).append({"secretRef": {"name": secrets}})


def _secret_volume(spec: Manifest, secrets: str) -> None:
    spec["volumes"].append({"name": "extra", "secret": {"secretName": secrets}})


def _projected_volume(spec: Manifest, secrets: str) -> None:
    spec["volumes"].append({"name": "extra", "projected": {"sources": [{"secret": {"name": secrets}}]}})


def _picked_key_volume(spec: Manifest, secrets: str) -> None:
    picked = {"secretName": secrets, "items": [{"key": "RAVEN_JWT_SECRET", "path": "k"}]}
    spec["volumes"].append({"name": "extra", "secret": picked})


def _unknown_volume(spec: Manifest, secrets: str) -> None:
    spec["volumes"].append({"name": "extra", "secret": {"secretName": "mystery"}})


def _init_container_env_from(spec: Manifest, secrets: str) -> None:
    init = copy.deepcopy(spec["containers"][0])
    init.update(name="sidecar", envFrom=[{"secretRef": {"name": secrets}}], env=[])
    spec.setdefault("initContainers", []).append(init)


def _drop_token_file(spec: Manifest, secrets: str) -> None:
    main = spec["containers"][0]
    main["env"] = [e for e in main["env"] if e["name"] != "RAVEN_WORKER_TOKEN_FILE"]


def _sub_path(spec: Manifest, secrets: str) -> None:
    for mount in spec["containers"][0]["volumeMounts"]:
        if mount["name"] == "worker-token":
            mount["subPath"] = "token"


BAD: dict[str, tuple[Callable[[Manifest, str], None], str]] = {
    # What the worker Deployment looked like before worker tokens.
    "env from the signing key": (
        _env("RAVEN_JWT_SECRET", "RAVEN_JWT_SECRET"),
        "env RAVEN_JWT_SECRET is the JWT signing key",
    ),
    "signing key under another name": (
        _env("SOME_KEY", "RAVEN_JWT_SECRET"),
        "env SOME_KEY is the JWT signing key",
    ),
    "literal private key": (
        _env("RAVEN_JWT_PRIVATE_KEY"),
        "env RAVEN_JWT_PRIVATE_KEY is the JWT signing key",
    ),
    "envFrom the services' secret": (_env_from, "envFrom takes Secret"),
    "secret volume": (_secret_volume, "volume extra takes Secret"),
    "projected volume": (_projected_volume, "volume extra takes Secret"),
    "init container": (_init_container_env_from, "container sidecar envFrom takes Secret"),
    "volume item of the key": (_picked_key_volume, "volume extra takes Secret"),
    "unknown secret": (_unknown_volume, "'mystery', which the check cannot see"),
    "no worker token": (_drop_token_file, "the worker needs RAVEN_WORKER_TOKEN_FILE"),
    "token by subPath": (_sub_path, "subPath, which Kubernetes never updates"),
}
HOLDS = (
    "envFrom the services' secret",
    "secret volume",
    "projected volume",
    "init container",
    "volume item of the key",
)


@pytest.mark.parametrize("overlay", ck.OVERLAYS)
@pytest.mark.parametrize("case", sorted(BAD))
def test_the_check_fires_on_every_way_to_the_signing_key(overlay: str, case: str) -> None:
    worker, objs = _worker_and_objs(overlay)
    bad = copy.deepcopy(worker)
    change, expected = BAD[case]
    change(bad["spec"]["template"]["spec"], _secret_name(objs, "raven-secrets"))
    problems = _problems(bad, objs)
    assert any(expected in p for p in problems), problems
    if case in HOLDS:
        assert any("holds the JWT signing key (RAVEN_JWT_SECRET)" in p for p in problems), problems


@pytest.mark.parametrize("overlay", ck.OVERLAYS)
def test_a_volume_taking_only_other_keys_of_a_secret_is_fine(overlay: str) -> None:
    worker, objs = _worker_and_objs(overlay)
    ok = copy.deepcopy(worker)
    picked = {
        "secretName": _secret_name(objs, "raven-secrets"),
        "items": [{"key": "training-run-database-url", "path": "u"}],
    }
    ok["spec"]["template"]["spec"]["volumes"].append({"name": "extra", "secret": picked})
    assert _problems(ok, objs) == []


def test_a_dev_worker_token_secret_must_hold_a_worker_only_token() -> None:
    worker, objs = _worker_and_objs("dev")
    name = _secret_name(objs, "raven-worker-token")
    superadmin = mint_token("root", ["superadmin"], secret="dev-only-jwt-secret-not-for-production")
    swapped = tuple(
        {**o, "data": {"token": base64.b64encode(superadmin.encode()).decode()}}
        if o["kind"] == "Secret" and o["metadata"]["name"] == name
        else o
        for o in objs
    )
    problems = _problems(worker, swapped)
    assert any("only the 'worker' permission" in p for p in problems), problems
