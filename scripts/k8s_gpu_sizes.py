"""Rules for trainer-worker Deployments per run size (``RAVEN_WORKER_GPUS_PER_RUN``, docs/scaling.md).

- A KEDA trigger measures the durable consumer of its target's size (``trainer-workers`` for 1 GPU,
  ``trainer-workers-gpus-N`` for N): scaling on another size's queue would start pods that never find work.
- On GPU overlays a worker requests and limits ``gpus_per_run x slots`` GPUs (``nvidia.com/gpu``).
- A sized Deployment is the base worker (``trainer-worker``) except for its size: name and labels, the
  ``RAVEN_WORKER_GPUS_PER_RUN`` variable, resources and emptyDir sizes. Anything else that differs is drift.
"""

from __future__ import annotations

import copy
from typing import Any

from scripts.k8s_objects import Objects, find, kn, pod_spec
from scripts.k8s_settings import env_of, settings_cls
from scripts.k8s_workers import is_worker_pod

SIZE_VARIABLE = "RAVEN_WORKER_GPUS_PER_RUN"
BASE_WORKER = "trainer-worker"


def worker_size(dep: dict[str, Any], objs: Objects) -> int:
    value = env_of(pod_spec(dep)["containers"][0], objs).get(SIZE_VARIABLE) or "1"
    return int(value) if str(value).isdigit() else 0


def sized_consumer(base_consumer: str, size: int) -> str:
    """The durable consumer workers of ``size`` pull (``common.nats_streams.worker_consumer``)."""
    settings_cls()  # puts the repository on sys.path
    from common.nats_streams import WORKER_CONSUMER, worker_consumer

    if base_consumer == WORKER_CONSUMER:
        return worker_consumer(size)
    return base_consumer if size <= 1 else f"{base_consumer}-gpus-{size}"


def check_gpu_sizes(objs: Objects, gpu: bool) -> list[str]:
    p: list[str] = []
    workers = [o for o in find(objs, "Deployment") if is_worker_pod(o)]
    base = next((w for w in workers if w["metadata"]["name"] == BASE_WORKER), None)
    for dep in workers:
        where = kn(dep)
        size = worker_size(dep, objs)
        if not 1 <= size <= 8:
            p.append(f"{where}: {SIZE_VARIABLE} must be an integer 1..8")
            continue
        env = env_of(pod_spec(dep)["containers"][0], objs)
        slots = int(env.get("RAVEN_WORKER_SLOTS") or 1) or 1
        if gpu:
            resources = pod_spec(dep)["containers"][0].get("resources") or {}
            for kind in ("requests", "limits"):
                have = str((resources.get(kind) or {}).get("nvidia.com/gpu", ""))
                if have != str(size * slots):
                    p.append(
                        f"{where}: {kind} nvidia.com/gpu {have or 'unset'} != {size} GPUs x {slots} slot(s)"
                    )
        if base is not None and dep is not base and _shape(dep) != _shape(base):
            p.append(f"{where}: differs from Deployment/{BASE_WORKER} beyond its size (keep them equal)")
    return p


def _shape(dep: dict[str, Any]) -> dict[str, Any]:
    """The pod spec without what a size may change; lists of named things as mappings (order-free)."""
    spec = copy.deepcopy(pod_spec(dep))
    for container in spec.get("containers", []):
        container.pop("resources", None)
        container["env"] = {e["name"]: e for e in container.get("env") or [] if e["name"] != SIZE_VARIABLE}
        container["volumeMounts"] = {m["name"]: m for m in container.get("volumeMounts") or []}
    volumes = {}
    for volume in spec.get("volumes") or []:
        if "emptyDir" in volume:
            volume["emptyDir"].pop("sizeLimit", None)
        volumes[volume["name"]] = volume
    spec["volumes"] = volumes
    return spec
