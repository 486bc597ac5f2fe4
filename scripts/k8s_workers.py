"""Rules for trainer-worker pods: placement and drain (``check_worker``), and credentials.

A worker authenticates with a worker token (Secret ``raven-worker-token``, mounted as a file named by
``RAVEN_WORKER_TOKEN_FILE``), never with the JWT signing key: ``check_worker_credentials`` fails when any
container of a worker pod could reach a signing key, through ``env`` (a variable named like one, or a key
reference to one), ``envFrom`` or a volume (``secret``, ``configMap``, ``projected``) of a Secret or
ConfigMap that holds one (a volume listing ``items`` takes only those keys). A source the check cannot see
(neither rendered, nor a cert-manager Certificate's Secret, nor documented by a ``k8s/base/*.example.yaml``
template) counts as holding one.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Mapping
from typing import Any

from scripts.k8s_objects import Objects, containers, find, kn, pod_spec
from scripts.k8s_settings import settings_default

Env = Mapping[str, str | None]
SIGNING_KEY = re.compile(r"jwt.*(secret|private)", re.IGNORECASE)  # RAVEN_JWT_SECRET, jwt-private-key, ...
WORKER_COMMAND = "services.trainer_worker"
WORKER_TOKEN_SECRET = "raven-worker-token"
CERTIFICATE_KEYS = ("tls.crt", "tls.key", "ca.crt")  # what cert-manager writes into a Certificate's Secret
# A worker's SIGTERM path after the training child's grace: 3 shutdown steps (common.tasks) + margin.
WORKER_SETTLE_STEPS_SECONDS = 30.0 + 10.0


def is_worker_pod(obj: dict[str, Any]) -> bool:
    return any(WORKER_COMMAND in (c.get("command") or []) + (c.get("args") or []) for c in containers(obj))


def check_worker(dep: dict[str, Any], objs: Objects, gpu: bool, env: Env) -> list[str]:
    """Placement (GPU or CPU), scratch space, grace period, PDB; ``env`` is what the main container gets."""
    p: list[str] = []
    where = kn(dep)
    spec = pod_spec(dep)
    main = spec["containers"][0]
    res = main.get("resources") or {}
    has_gpu = "nvidia.com/gpu" in (res.get("limits") or {})
    if gpu and not has_gpu:
        p.append(f"{where}: GPU worker must request nvidia.com/gpu")
    if not gpu and (has_gpu or "nvidia.com/gpu" in (res.get("requests") or {}) or spec.get("nodeSelector")):
        p.append(f"{where}: CPU worker must not request GPUs or select GPU nodes")
    if gpu and not spec.get("tolerations"):
        p.append(f"{where}: GPU worker needs tolerations for GPU node taints")
    if gpu and env.get("RAVEN_DEVICE") not in ("cuda", "auto"):
        p.append(f"{where}: GPU worker with RAVEN_DEVICE={env.get('RAVEN_DEVICE')}")
    if not gpu and env.get("RAVEN_DEVICE") != "cpu":
        p.append(f"{where}: CPU worker must set RAVEN_DEVICE=cpu")
    work = env.get("RAVEN_WORK_DIR")
    mounts = {m["mountPath"]: m["name"] for m in main.get("volumeMounts", [])}
    if not work or work not in mounts:
        p.append(f"{where}: RAVEN_WORK_DIR must be a mounted volume")
    if "/tmp" not in mounts:
        p.append(f"{where}: /tmp must be a writable volume")
    termination = spec.get("terminationGracePeriodSeconds", 30)
    if termination < 120:
        p.append(f"{where}: terminationGracePeriodSeconds too short to checkpoint and release the lease")
    grace = float(env.get("RAVEN_PREEMPTION_GRACE_SECONDS") or settings_default("preemption_grace_seconds"))
    if termination <= grace + WORKER_SETTLE_STEPS_SECONDS:
        p.append(
            f"{where}: terminationGracePeriodSeconds {termination}s must exceed "
            f"RAVEN_PREEMPTION_GRACE_SECONDS {grace:g}s + {WORKER_SETTLE_STEPS_SECONDS:g}s "
            "(upload the checkpoint, release the lease, exit)"
        )
    if not find(objs, "PodDisruptionBudget", dep["metadata"]["name"]):
        p.append(f"{where}: no PodDisruptionBudget")
    return p


def _keys(objs: Objects, kind: str, name: str, external: Mapping[str, set[str]]) -> set[str] | None:
    """Keys of a rendered ConfigMap/Secret, of a cert-manager Certificate's Secret, or of an out-of-band
    Secret by its template; None: unknown."""
    found = find(objs, kind, name)
    if found:
        return set(found[0].get("data") or {}) | set(found[0].get("stringData") or {})
    if kind == "Secret" and any(c["spec"].get("secretName") == name for c in find(objs, "Certificate")):
        return set(CERTIFICATE_KEYS)
    return set(external[name]) if kind == "Secret" and name in external else None


def _sources(obj: dict[str, Any]) -> list[tuple[str, str, str, set[str] | None]]:
    """(what, kind, name, keys when only listed ``items`` are taken) of each ConfigMap/Secret a pod takes."""
    found: list[tuple[str, str, str, set[str] | None]] = []
    for c in containers(obj):
        for src in c.get("envFrom", []):
            for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if src.get(ref):
                    found.append((f"container {c['name']} envFrom", kind, src[ref]["name"], None))
    for volume in pod_spec(obj).get("volumes", []):
        what = f"volume {volume['name']}"
        picks = [
            (volume.get("secret"), "Secret", "secretName"),
            (volume.get("configMap"), "ConfigMap", "name"),
        ]
        for projected in (volume.get("projected") or {}).get("sources", []):
            picks += [
                (projected.get("secret"), "Secret", "name"),
                (projected.get("configMap"), "ConfigMap", "name"),
            ]
        for source, kind, name_field in picks:
            if source:
                items = source.get("items")
                found.append((what, kind, source[name_field], {i["key"] for i in items} if items else None))
    return found


def check_worker_credentials(
    obj: dict[str, Any], objs: Objects, external: Mapping[str, set[str]]
) -> list[str]:
    """No container of a worker pod can reach the JWT signing key; the worker gets a worker token file."""
    where = kn(obj)
    p: list[str] = []
    for what, kind, name, items in _sources(obj):
        keys = items if items is not None else _keys(objs, kind, name, external)
        if keys is None:
            p.append(
                f"{where}: {what} takes {kind} {name!r}, which the check cannot see: may hold the signing key"
            )
            continue
        held = sorted(k for k in keys if SIGNING_KEY.search(k))
        if held:
            p.append(
                f"{where}: {what} takes {kind} {name!r}, which holds the JWT signing key ({', '.join(held)})"
            )
    for c in containers(obj):
        for e in c.get("env", []):
            refs = [
                r
                for r in ((e.get("valueFrom") or {}).get(k) for k in ("secretKeyRef", "configMapKeyRef"))
                if r
            ]
            if SIGNING_KEY.search(e["name"]) or any(SIGNING_KEY.search(str(r.get("key", ""))) for r in refs):
                p.append(f"{where}: container {c['name']} env {e['name']} is the JWT signing key")
    return p + _token_file_problems(obj, objs)


def _token_file_problems(obj: dict[str, Any], objs: Objects) -> list[str]:
    """The main container reads RAVEN_WORKER_TOKEN_FILE from a mounted Secret (rotation without restart)."""
    where = kn(obj)
    main = pod_spec(obj)["containers"][0]
    path = next((e.get("value") for e in main.get("env", []) if e["name"] == "RAVEN_WORKER_TOKEN_FILE"), None)
    if not path:
        return [f"{where}: the worker needs RAVEN_WORKER_TOKEN_FILE (its worker token, a mounted Secret)"]
    secret_volumes = {
        v["name"]: v["secret"]["secretName"] for v in pod_spec(obj).get("volumes", []) if v.get("secret")
    }
    for mount in main.get("volumeMounts", []):
        if path.startswith(mount["mountPath"].rstrip("/") + "/") and mount["name"] in secret_volumes:
            if mount.get("subPath"):
                return [
                    f"{where}: the worker token mount uses subPath, which Kubernetes never updates (rotation)"
                ]
            secret = secret_volumes[mount["name"]]
            if not secret.startswith(WORKER_TOKEN_SECRET):
                return [
                    f"{where}: the worker token comes from Secret {secret!r}, not {WORKER_TOKEN_SECRET!r}"
                ]
            return _rendered_token_problems(where, find(objs, "Secret", secret))
    return [f"{where}: RAVEN_WORKER_TOKEN_FILE {path} is not in a mounted Secret volume"]


def _rendered_token_problems(where: str, rendered: list[dict[str, Any]]) -> list[str]:
    """A worker token written into the manifests (dev) must be a worker-only token that has not expired."""
    if not rendered:
        return []  # provisioned out of band (prod): see k8s/base/raven-worker-token.example.yaml
    from common.auth import inspect_worker_token  # scripts/check_k8s.py puts the repository on sys.path

    data = rendered[0].get("data") or {}
    if "token" not in data:
        return [f"{where}: Secret {kn(rendered[0])} has no key 'token'"]
    try:
        info = inspect_worker_token(base64.b64decode(data["token"]).decode())
    except ValueError as exc:
        return [f"{where}: Secret {kn(rendered[0])}: {exc}"]
    if info.expires_at < time.time():
        return [f"{where}: the worker token in {kn(rendered[0])} has expired: issue a new one"]
    return []
