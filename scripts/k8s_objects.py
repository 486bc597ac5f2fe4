"""Reading rendered Kubernetes objects (plain dicts from `kubectl kustomize`): names, lookups, pod specs.

Shared by scripts/check_k8s.py and its rule modules (scripts/k8s_workers.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

Objects = tuple[dict[str, Any], ...]


def kn(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def find(objs: Objects, kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def by_base_name(objs: Objects, kind: str, base: str) -> dict[str, Any] | None:
    """A generated ConfigMap/Secret by its name without kustomize's hash suffix."""
    for o in objs:
        name = o["metadata"]["name"]
        if o["kind"] == kind and (name == base or re.fullmatch(re.escape(base) + r"-[a-z0-9]{10}", name)):
            return o
    return None


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def containers(obj: dict[str, Any], init: bool = True) -> Iterator[dict[str, Any]]:
    spec = pod_spec(obj)
    if init:
        yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])
