#!/usr/bin/env python3
"""Check the Kubernetes manifests under k8s/: render, schema-validate, and cross-check with Settings.

For each overlay (k8s/overlays/dev, k8s/overlays/prod):

1. `kubectl kustomize` renders it (kubectl from PATH, or $KUBECTL). Debian's `kubernetes-client`
   package (kubectl 1.20, kustomize v2.0.3) and current kubectl (kustomize v5) both work.
2. Every built-in object validates, strictly (no unknown fields), against the Kubernetes OpenAPI
   schemas shipped offline in `kubernetes-validate`, for the oldest and the newest Kubernetes
   version we support. CRD objects have no schema there: KEDA's ScaledObject and cert-manager's
   Certificate are checked by explicit shape checks (`check_scaled_object`, `check_k8s_tls.py`);
   any other kind without a schema is an error. TLS wiring is checked by `check_k8s_tls.check_tls`.
3. Environment (scripts/k8s_settings.py): every variable a Raven container receives (env, and the
   keys of envFrom ConfigMaps/Secrets) is a field of `common.settings.Settings` when it starts with
   RAVEN_, or one of a short allowlist (S3 credentials for fsspec/s3fs) otherwise; literal values
   must pass the Settings validation.
4. Policies the design relies on: restricted pod security on every pod, resources on every
   container, gRPC probes on the gRPC port, termination grace longer than the drain grace,
   `migrate` init containers and Jobs, GPU requests only where intended, NATS replicas vs stream
   replicas, KEDA target/stream/consumer consistency.
5. Worker pods (scripts/k8s_workers.py): no way to the JWT signing key (env, envFrom, volumes),
   a worker token file from a mounted Secret instead.

Run: `.venv/bin/python scripts/check_k8s.py` (exit 1 on any problem). The pytest wrapper is
tests/unit/k8s/test_k8s_manifests.py, so `make test` runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML: via kubernetes-validate, mmengine

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `scripts.*` and `common.*` importable
    sys.path.insert(0, str(ROOT))
from scripts.check_k8s_tls import CERTIFICATE, check_certificate, check_tls, probe_port  # noqa: E402
from scripts.k8s_gpu_sizes import check_gpu_sizes, sized_consumer, worker_size  # noqa: E402
from scripts.k8s_objects import by_base_name, containers, find, kn, pod_spec  # noqa: E402
from scripts.k8s_settings import (  # noqa: E402
    POD_KINDS,
    check_settings_env,
    container_env,
    env_of,
    secret_template_keys,
    settings_default,
    settings_literals_from_configmap,
    workers_durable_consumer,
)
from scripts.k8s_workers import check_worker, check_worker_credentials, is_worker_pod  # noqa: E402

# Names the tests (tests/unit/k8s) reach through this module, whichever rule module defines them.
__all__ = [
    "OVERLAYS",
    "POD_KINDS",
    "KubectlMissing",
    "by_base_name",
    "check_grpc_server",
    "check_overlay",
    "check_scaled_object",
    "check_schemas",
    "check_settings_env",
    "container_env",
    "env_of",
    "find",
    "is_worker_pod",
    "kubectl",
    "main",
    "render",
    "secret_template_keys",
]

K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
# Oldest (native gRPC probes GA in 1.27; we ask 1.29+) and newest schema versions checked.
KUBERNETES_VERSIONS = ("1.29.0", "1.34.0")
KUBECTL_INSTALL_HINT = (
    "kubectl not found: install Debian's package with `apt-get install -y kubernetes-client` "
    "(scripts/setup.sh does), or point $KUBECTL at a kubectl binary"
)
CRD_CHECKS = {("keda.sh/v1alpha1", "ScaledObject"), CERTIFICATE}


class KubectlMissing(RuntimeError):
    pass


# --------------------------------------------------------------------------------------- render


def kubectl() -> str:
    path = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not path:
        raise KubectlMissing(KUBECTL_INSTALL_HINT)
    return path


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize k8s/overlays/{overlay} failed:\n{proc.stderr}")
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d is not None]
    if not docs:
        raise RuntimeError(f"k8s/overlays/{overlay} rendered no objects")
    return tuple(docs)


# ------------------------------------------------------------------------------------- schemas


def check_schemas(objs: tuple[dict[str, Any], ...]) -> list[str]:
    from kubernetes_validate import utils as kv

    problems: list[str] = []
    for obj in objs:
        if (obj.get("apiVersion"), obj.get("kind")) in CRD_CHECKS:
            continue  # no schema shipped; see check_scaled_object
        for version in KUBERNETES_VERSIONS:
            try:
                kv.validate(obj, version, strict=True)
            except kv.SchemaNotFoundError:
                problems.append(f"{kn(obj)}: no schema for {obj.get('apiVersion')} in Kubernetes {version}")
            except kv.ValidationError as e:
                path = "/".join(str(p) for p in e.path)
                problems.append(f"{kn(obj)} (Kubernetes {version}): {path}: {e.message}")
    return problems


def check_scaled_object(obj: dict[str, Any], objs: tuple[dict[str, Any], ...], namespace: str) -> list[str]:
    """Shape of a KEDA ScaledObject with a nats-jetstream trigger (KEDA has no schema offline)."""
    p: list[str] = []
    where = kn(obj)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [f"{where}: no spec"]
    known = {
        "scaleTargetRef",
        "pollingInterval",
        "cooldownPeriod",
        "initialCooldownPeriod",
        "idleReplicaCount",
        "minReplicaCount",
        "maxReplicaCount",
        "fallback",
        "advanced",
        "triggers",
    }
    p += [f"{where}: unknown spec field {k!r}" for k in sorted(set(spec) - known)]
    target = spec.get("scaleTargetRef") or {}
    kind = target.get("kind", "Deployment")
    if not find(objs, kind, target.get("name")):
        p.append(f"{where}: scaleTargetRef {kind}/{target.get('name')} is not rendered")
    for k in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
        if k in spec and (not isinstance(spec[k], int) or isinstance(spec[k], bool) or spec[k] < 0):
            p.append(f"{where}: {k} must be a non-negative integer")
    lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if lo != 0:
        p.append(f"{where}: minReplicaCount must be 0 (scale to zero), got {lo}")
    if not (isinstance(hi, int) and hi >= 1):
        p.append(f"{where}: maxReplicaCount must be >= 1")
    triggers = spec.get("triggers")
    if not isinstance(triggers, list) or not triggers:
        return [*p, f"{where}: no triggers"]
    config = settings_literals_from_configmap(objs)
    for t in triggers:
        if t.get("type") != "nats-jetstream":
            p.append(f"{where}: unexpected trigger type {t.get('type')!r}")
            continue
        md = t.get("metadata") or {}
        need = {"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"}
        allowed = need | {"activationLagThreshold", "useHttps"}
        p += [f"{where}: trigger metadata lacks {k}" for k in sorted(need - set(md))]
        p += [f"{where}: unknown trigger metadata {k}" for k in sorted(set(md) - allowed)]
        p += [
            f"{where}: trigger metadata {k} must be a string" for k, v in md.items() if not isinstance(v, str)
        ]
        for k in ("lagThreshold", "activationLagThreshold"):
            if k in md and not re.fullmatch(r"\d+", str(md[k])):
                p.append(f"{where}: {k} must be an integer string")
        stream = config.get("RAVEN_JOBS_STREAM", settings_default("jobs_stream"))
        if md.get("stream") != stream:
            p.append(f"{where}: stream {md.get('stream')!r} != RAVEN_JOBS_STREAM {stream!r}")
        consumer = settings_default("jobs_consumer") or workers_durable_consumer()
        consumer = config.get("RAVEN_JOBS_CONSUMER", consumer)
        targets = find(objs, kind, target.get("name"))
        if targets:  # a worker Deployment per run size, each scaled on its size's queue
            consumer = sized_consumer(consumer, worker_size(targets[0], objs))
        if md.get("consumer") != consumer:
            p.append(f"{where}: consumer {md.get('consumer')!r} != the workers' durable {consumer!r}")
        endpoint = str(md.get("natsServerMonitoringEndpoint", ""))
        want = f"nats-headless.{namespace}.svc.cluster.local:8222"
        if endpoint != want:
            p.append(f"{where}: natsServerMonitoringEndpoint {endpoint!r} != {want!r}")
    for hpa in find(objs, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"].get("name") == target.get("name"):
            p.append(f"{where}: {kn(hpa)} targets the same workload (KEDA creates its own HPA)")
    return p


# ------------------------------------------------------------------------------------- policies


def check_pod_security(obj: dict[str, Any]) -> list[str]:
    p: list[str] = []
    spec = pod_spec(obj)
    psc = spec.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        p.append(f"{kn(obj)}: pod securityContext.runAsNonRoot must be true")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        p.append(f"{kn(obj)}: pod seccompProfile must be RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        p.append(f"{kn(obj)}: automountServiceAccountToken must be false")
    for c in containers(obj):
        where = f"{kn(obj)} container {c['name']}"
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            p.append(f"{where}: allowPrivilegeEscalation must be false")
        if sc.get("readOnlyRootFilesystem") is not True:
            p.append(f"{where}: readOnlyRootFilesystem must be true")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            p.append(f"{where}: capabilities must drop ALL")
        if sc.get("privileged"):
            p.append(f"{where}: privileged")
        res = c.get("resources") or {}
        if not (res.get("requests") or {}).get("memory") or not (res.get("requests") or {}).get("cpu"):
            p.append(f"{where}: cpu and memory requests required")
        if not (res.get("limits") or {}).get("memory"):
            p.append(f"{where}: memory limit required")
        image = c.get("image", "")
        if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
            p.append(f"{where}: image {image!r} must carry an explicit tag")
    return p


def check_grpc_server(dep: dict[str, Any], objs: tuple[dict[str, Any], ...], service: str) -> list[str]:
    p: list[str] = []
    where = kn(dep)
    spec = pod_spec(dep)
    main = spec["containers"][0]
    env = env_of(main, objs)
    port = int(env.get("RAVEN_GRPC_PORT") or 0)
    if not port:
        p.append(f"{where}: RAVEN_GRPC_PORT not set")
    if port not in [cp["containerPort"] for cp in main.get("ports", [])]:
        p.append(f"{where}: gRPC port {port} not declared")
    probed = probe_port(env, port)  # the plaintext health port when the server speaks TLS
    for probe in ("livenessProbe", "readinessProbe"):
        if not probed or (main.get(probe) or {}).get("grpc", {}).get("port") != probed:
            p.append(f"{where}: {probe} must be a grpc probe on port {probed or 'RAVEN_HEALTH_PORT'}")
    metrics = int(env.get("RAVEN_METRICS_PORT") or 0)
    if metrics and metrics not in [cp["containerPort"] for cp in main.get("ports", [])]:
        p.append(f"{where}: metrics port {metrics} not declared")
    grace = float(env.get("RAVEN_SHUTDOWN_GRACE_SECONDS") or settings_default("shutdown_grace_seconds"))
    pre_stop = 0.0
    cmd = (((main.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or []
    if len(cmd) == 2 and cmd[0] == "sleep":
        pre_stop = float(cmd[1])
    if spec.get("terminationGracePeriodSeconds", 30) <= grace + pre_stop:
        p.append(
            f"{where}: terminationGracePeriodSeconds must exceed preStop {pre_stop:g}s + "
            f"RAVEN_SHUTDOWN_GRACE_SECONDS {grace:g}s"
        )
    migrate = ["python", "-m", f"services.{service}", "migrate"]
    if not any(ic.get("command") == migrate for ic in spec.get("initContainers", [])):
        p.append(f"{where}: no init container running {' '.join(migrate)}")
    if not any(j for j in find(objs, "Job") if any(c.get("command") == migrate for c in containers(j))):
        p.append(f"{where}: no migration Job running {' '.join(migrate)}")
    mounts = {m["mountPath"] for m in main.get("volumeMounts", [])}
    if "/tmp" not in mounts:
        p.append(f"{where}: /tmp must be a writable volume (read-only root filesystem)")
    if "replicas" in dep["spec"] and find(objs, "HorizontalPodAutoscaler"):
        p.append(f"{where}: sets replicas while an HPA owns the count")
    svc = find(objs, "Service", dep["metadata"]["name"])
    if not svc:
        p.append(f"{where}: no Service")
    else:
        ports = main.get("ports", [])
        names = {cp.get("name") for cp in ports} | {cp["containerPort"] for cp in ports}
        for sp in svc[0]["spec"]["ports"]:
            if sp.get("targetPort", sp["port"]) not in names:
                p.append(f"{kn(svc[0])}: targetPort {sp.get('targetPort')} matches no container port")
    if not find(objs, "PodDisruptionBudget", dep["metadata"]["name"]):
        p.append(f"{where}: no PodDisruptionBudget")
    return p


def check_nats(objs: tuple[dict[str, Any], ...], clustered: bool) -> list[str]:
    p: list[str] = []
    sts = find(objs, "StatefulSet", "nats")
    if not sts:
        return ["StatefulSet/nats missing"]
    replicas = sts[0]["spec"].get("replicas", 1)
    conf = (find(objs, "ConfigMap", "nats-config") or [{}])[0].get("data", {}).get("nats.conf", "")
    if "jetstream" not in conf:
        p.append("nats.conf: jetstream not enabled")
    routes = re.findall(r"nats://(nats-\d+)\.nats-headless:6222", conf)
    if clustered:
        if replicas != 3:
            p.append(f"StatefulSet/nats: {replicas} replicas, want 3")
        if sorted(routes) != [f"nats-{i}" for i in range(replicas)]:
            p.append(f"nats.conf: routes {routes} do not match {replicas} replicas")
    elif routes or "cluster" in conf:
        p.append("nats.conf: single node must not configure a cluster")
    if not sts[0]["spec"].get("volumeClaimTemplates"):
        p.append("StatefulSet/nats: JetStream needs a PVC")
    if not find(objs, "Service", "nats-headless") or not find(objs, "Service", "nats"):
        p.append("nats / nats-headless Services missing")
    stream_replicas = int(settings_literals_from_configmap(objs).get("RAVEN_STREAM_REPLICAS", 1))
    if stream_replicas > replicas:
        p.append(f"RAVEN_STREAM_REPLICAS={stream_replicas} exceeds {replicas} NATS nodes")
    return p


def check_overlay(overlay: str) -> list[str]:
    """All checks for one overlay; [] when it is fine."""
    objs = render(overlay)
    namespaces = find(objs, "Namespace")
    if len(namespaces) != 1:
        return [f"{overlay}: expected exactly one Namespace, got {len(namespaces)}"]
    namespace = namespaces[0]["metadata"]["name"]
    p = [
        f"{kn(o)}: namespace {o['metadata'].get('namespace')!r} != {namespace!r}"
        for o in objs
        if o["kind"] != "Namespace" and o["metadata"].get("namespace") != namespace
    ]
    p += check_schemas(objs)
    for o in objs:
        if (o.get("apiVersion"), o.get("kind")) == ("keda.sh/v1alpha1", "ScaledObject"):
            p += check_scaled_object(o, objs, namespace)
        if (o.get("apiVersion"), o.get("kind")) == CERTIFICATE:
            p += check_certificate(o)
        if o["kind"] in POD_KINDS:
            p += check_pod_security(o)
    p += check_settings_env(objs)
    p += check_tls(objs, env_of)
    for name, service in (("training-run", "training_run"), ("trained-model", "trained_model")):
        dep = find(objs, "Deployment", name)
        p += check_grpc_server(dep[0], objs, service) if dep else [f"Deployment/{name} missing"]
    worker = find(objs, "Deployment", "trainer-worker")
    gpu = overlay != "dev"
    if worker:
        p += check_worker(worker[0], objs, gpu, env_of(pod_spec(worker[0])["containers"][0], objs))
    else:
        p.append("Deployment/trainer-worker missing")
    for sized in find(objs, "Deployment"):  # workers for runs of more GPUs (k8s_gpu_sizes.py)
        if is_worker_pod(sized) and sized["metadata"]["name"] != "trainer-worker":
            p += check_worker(sized, objs, gpu, env_of(pod_spec(sized)["containers"][0], objs))
    p += check_gpu_sizes(objs, gpu)
    for o in objs:
        if o["kind"] in POD_KINDS and is_worker_pod(o):
            p += check_worker_credentials(o, objs, secret_template_keys())
    scaled = find(objs, "ScaledObject")
    if gpu and not scaled:
        p.append("prod: no KEDA ScaledObject for the trainer workers")
    if not gpu and scaled:
        p.append("dev: a ScaledObject needs KEDA, which dev does not assume")
    p += check_nats(objs, clustered=gpu)
    return [f"{overlay}: {x}" for x in p]


def main() -> int:
    try:
        problems = [x for overlay in OVERLAYS for x in check_overlay(overlay)]
    except (KubectlMissing, RuntimeError) as e:
        print(e, file=sys.stderr)
        return 2
    for x in problems:
        print(x)
    counts = ", ".join(f"{o}: {len(render(o))} objects" for o in OVERLAYS)
    print(f"check_k8s: {counts}; {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
