"""Plain-data form of mmengine configs: canonical JSON, its hash, and the way back to what mmdet expects.

A resolved config travels as a ``google.protobuf.Struct`` (every JSON number becomes a double, tuples
become lists). ``canonical`` is the JSON form we store and hash (lists; integral numbers as ints), so
``config_sha256`` is the same before and after a Struct round trip; ``restore_types`` turns that form back
into what mmcv/mmdet transforms require (tuples for sizes such as ``Resize.scale``, which
``mmcv.imrescale`` refuses as a list; ints for counts).
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
from collections.abc import Iterator, Sequence
from typing import Any

URL_MARKERS = ("://", "open-mmlab:", "torchvision:", "mmcls:", "mmpretrain:", "modelzoo:")
# Keys whose list values mmcv/mmdet only accept as tuples (mmcv.imrescale, impad, CachedMosaic, RandomResize).
TUPLE_KEYS = frozenset(
    {
        "scale", "scales", "img_scale", "crop_size", "size", "ratio_range", "pad_val", "img", "seg",
        "meta_keys", "proposal_nums", "dynamic_intervals", "classes", "out_indices",
    }
)  # fmt: skip


class NotPlainData(ValueError):
    """A config value that JSON cannot hold (a Python object, a non-finite number)."""


def canonical(data: Any) -> Any:
    """Plain JSON data: dicts with str keys, lists, str/int/float/bool/None; integral floats as ints."""
    if isinstance(data, dict):
        return {str(k): canonical(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [canonical(v) for v in data]
    if isinstance(data, float):
        if not math.isfinite(data):
            raise NotPlainData(f"non-finite number {data!r}")
        return int(data) if data.is_integer() else data
    if data is None or isinstance(data, str | int | bool):
        return data
    raise NotPlainData(f"holds a {type(data).__name__}, not plain data")


def config_sha256(data: dict[str, Any]) -> str:
    """Hash of the canonical JSON form; stable across JSON and protobuf Struct round trips."""
    blob = json.dumps(canonical(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def restore_types(data: Any, key: str | None = None) -> Any:
    """Inverse of the JSON/Struct flattening: integral floats back to ints, size-like lists back to tuples."""
    if isinstance(data, dict):
        return {k: restore_types(v, k) for k, v in data.items()}
    if isinstance(data, list | tuple):
        items = [restore_types(v) for v in data]
        if key in TUPLE_KEYS:
            if items and all(isinstance(v, list | tuple) for v in items):
                return [tuple(v) for v in items]
            if all(not isinstance(v, dict | list | tuple) for v in items):
                return tuple(items)
        return items
    if isinstance(data, float) and data.is_integer():
        return int(data)
    return data


def relative_paths(data: Any, anchors: Sequence[tuple[str, str]]) -> Any:
    """A copy of ``data`` where each string naming a path under an anchor directory is made relative.

    ``anchors`` are ``(absolute directory, label)`` pairs: ``/work/r1/attempt-1/data/val.json`` under
    ``("/work/r1/attempt-1", "")`` becomes ``data/val.json``; the directory itself becomes ``label`` (or
    ``.``). The longest matching directory wins. Other strings are kept as they are.
    """
    ordered = sorted(((d.rstrip("/"), label) for d, label in anchors if d.startswith("/")), reverse=True)

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        if isinstance(value, str) and value.startswith("/"):
            for directory, label in ordered:
                if value == directory:
                    return label or "."
                if value.startswith(directory + "/"):
                    return posixpath.join(label, value[len(directory) + 1 :])
        return value

    return convert(data)


def find_urls(data: Any) -> list[str]:
    """Strings that would make mmengine download something (http(s), open-mmlab://, torchvision://, ...)."""
    if isinstance(data, dict):
        return [u for v in data.values() for u in find_urls(v)]
    if isinstance(data, list | tuple):
        return [u for v in data for u in find_urls(v)]
    if isinstance(data, str) and any(m in data for m in URL_MARKERS):
        return [data]
    return []


def walk_dicts(node: Any, skip: frozenset[str] = frozenset()) -> Iterator[dict[str, Any]]:
    """Every dict in a nested config, depth first; subtrees under the keys in ``skip`` are left out."""
    if isinstance(node, dict):
        yield node
        for k, v in node.items():
            if k not in skip:
                yield from walk_dicts(v, skip)
    elif isinstance(node, list | tuple):
        for v in node:
            yield from walk_dicts(v, skip)


def leaf_datasets(ds: dict[str, Any]) -> list[dict[str, Any]]:
    """The concrete datasets inside dataset wrappers (RepeatDataset, ConcatDataset, MultiImageMixDataset)."""
    if "datasets" in ds:
        return [leaf for d in ds["datasets"] for leaf in leaf_datasets(d)]
    if "dataset" in ds:
        return leaf_datasets(ds["dataset"])
    return [ds]
