"""What a Raven container is told through its environment, checked against ``common.settings.Settings``.

Part of scripts/check_k8s.py (check 3 there): ``container_env`` collects every variable a container receives
(``env``, and the keys of ``envFrom`` ConfigMaps/Secrets; Secrets that live outside the manifests are read
from their ``k8s/base/*.example.yaml`` templates), ``check_settings_env`` holds them against the Settings
fields and their validation. The other checks read settings defaults and the environment through here.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML: via kubernetes-validate, mmengine

from scripts.k8s_objects import by_base_name, containers, find, kn

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
# Non-RAVEN variables a Raven container may receive: credentials/endpoint for s3fs (botocore).
ALLOWED_NON_RAVEN_ENV = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
    }
)
# Secrets that exist outside the manifests in prod; their keys are documented in templates
# k8s/base/*.example.yaml (raven-secrets: the services' keys; raven-worker-token: the workers' token).
SECRET_TEMPLATE = K8S / "base" / "raven-secrets.example.yaml"
EXTERNAL_SECRETS = {"raven-secrets", "raven-s3", "raven-worker-token"}
POD_KINDS = {"Deployment", "StatefulSet", "Job", "DaemonSet"}
RAVEN_IMAGES = ("raven-service", "raven-worker")
DEFAULT_JOBS_CONSUMER = "trainer-workers"


def is_raven_image(image: str) -> bool:
    repo = image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
    return repo.startswith(RAVEN_IMAGES)


def settings_cls() -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from common.settings import Settings

    return Settings


@cache
def settings_fields() -> dict[str, str]:
    """RAVEN_* variable name -> Settings field name."""
    return {f"RAVEN_{name.upper()}": name for name in settings_cls().model_fields}


def settings_default(field: str) -> Any:
    info = settings_cls().model_fields.get(field)
    return None if info is None else info.default


def workers_durable_consumer() -> str:
    """The durable consumer the trainer workers pull from (what KEDA must measure)."""
    settings_cls()
    try:
        from common.nats_streams import WORKER_CONSUMER
    except ImportError:
        return DEFAULT_JOBS_CONSUMER
    return str(WORKER_CONSUMER)


def settings_literals_from_configmap(objs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    cm = by_base_name(objs, "ConfigMap", "raven-config")
    return dict((cm or {}).get("data") or {})


def secret_template_keys() -> dict[str, set[str]]:
    keys = {"raven-s3": set(ALLOWED_NON_RAVEN_ENV)}
    for template in sorted((K8S / "base").glob("*.example.yaml")):
        doc = yaml.safe_load(template.read_text())
        keys[doc["metadata"]["name"]] = set(doc.get("stringData") or {}) | set(doc.get("data") or {})
    return keys


def container_env(
    c: dict[str, Any], objs: tuple[dict[str, Any], ...], where: str
) -> tuple[dict[str, str | None], list[str]]:
    """Every variable the container gets -> literal value (None when from a Secret key/fieldRef)."""
    p: list[str] = []
    env: dict[str, str | None] = {}
    template_keys = secret_template_keys()
    for src in c.get("envFrom", []):
        for kind, ref_key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = src.get(ref_key)
            if not ref:
                continue
            if src.get("prefix"):
                p.append(f"{where}: envFrom prefix is not supported by the check")
            obj = find(objs, kind, ref["name"])
            if obj:
                data = dict(obj[0].get("data") or {}) | dict(obj[0].get("stringData") or {})
                for k, v in data.items():
                    env[k] = v if kind == "ConfigMap" else None
            elif kind == "Secret" and ref["name"] in EXTERNAL_SECRETS and ref.get("optional"):
                for k in template_keys.get(ref["name"], ()):
                    env[k] = None
            else:
                p.append(f"{where}: envFrom {kind} {ref['name']!r} is not rendered")
    for e in c.get("env", []):
        name = e["name"]
        if "value" in e:
            env[name] = str(e["value"])
            continue
        vf = e.get("valueFrom", {})
        env[name] = None
        for kind, ref_key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            ref = vf.get(ref_key)
            if not ref:
                continue
            obj = find(objs, kind, ref["name"])
            if obj:
                data = dict(obj[0].get("data") or {}) | dict(obj[0].get("stringData") or {})
                if ref["key"] not in data:
                    p.append(f"{where}: {name} refers to missing key {ref['key']!r} of {kind} {ref['name']}")
                elif kind == "ConfigMap":
                    env[name] = data[ref["key"]]
            elif kind == "Secret" and ref["name"] in EXTERNAL_SECRETS:
                if ref["key"] not in template_keys.get(ref["name"], set()):
                    p.append(
                        f"{where}: {name} refers to key {ref['key']!r} not documented in "
                        f"{SECRET_TEMPLATE.relative_to(ROOT)}"
                    )
            else:
                p.append(f"{where}: {name} refers to {kind} {ref['name']!r}, which is not rendered")
    return env, p


def check_settings_env(objs: tuple[dict[str, Any], ...]) -> list[str]:
    settings = settings_cls()
    fields = settings_fields()
    p: list[str] = []
    for obj in objs:
        if obj["kind"] not in POD_KINDS:
            continue
        for c in containers(obj):
            if not is_raven_image(c.get("image", "")):
                continue
            where = f"{kn(obj)} container {c['name']}"
            env, problems = container_env(c, objs, where)
            p += problems
            for name in sorted(env):
                if name.startswith("RAVEN_"):
                    if name not in fields:
                        p.append(f"{where}: {name} is not a field of common.settings.Settings")
                elif name not in ALLOWED_NON_RAVEN_ENV:
                    p.append(f"{where}: {name} is neither a RAVEN_ setting nor allowlisted")
            values = {fields[k]: v for k, v in env.items() if k in fields and v is not None}
            try:
                settings(**values)
            except Exception as e:  # pydantic ValidationError: one line per rejected value
                errors = e.errors() if hasattr(e, "errors") else [{"loc": (), "msg": str(e)}]
                p += [
                    f"{where}: Settings rejects {'.'.join(map(str, err['loc']))}="
                    f"{err.get('input')!r}: {err['msg']}"
                    for err in errors
                ]
    return p


def env_of(c: dict[str, Any], objs: tuple[dict[str, Any], ...]) -> dict[str, str | None]:
    return container_env(c, objs, "")[0]
