"""The one config gate: what a training config may contain before anything builds it.

Used at import (``ImportTrainedModel``), at fine-tune (the base model's stored config in ``build_config``),
on ``build_config``'s final config, on the worker before ``Runner.from_cfg``, at publish and when a model is
chosen as a base.

:func:`check_config` walks plain config data and refuses:

- a ``type`` that is not the name of a *class* registered in the mmdet / mmengine registries (mmcv registers
  into mmengine's). MMEngine's ``Registry.get`` falls back to importing any dotted path
  (``subprocess.getoutput``), so dotted names are never accepted, and functions are not classes. The names
  come from ``registered_classes.json``, generated from the live registries by
  ``scripts/gen_registered_classes.py`` (a unit test fails when it drifts); checking them needs no
  torch/mmcv/mmdet import in the services.
- under a key ``nms``, a ``type`` other than mmcv's nms ops (``batched_nms`` does ``eval(type)``); under
  ``roi_layer`` one other than the mmcv RoI ops mmdet looks up with ``getattr``; under ``collate_fn`` a
  function not registered in ``FUNCTIONS``.
- an optimizer wrapper ``constructor`` that is not a registered class; ``custom_imports``; a
  ``default_scope`` other than ``mmdet``; a ``_scope_`` other than ``mmdet`` or ``mmengine``.

:func:`load_untrusted_config` turns an untrusted config file and its ``_base_`` chain into checked data
without executing any of it (see :mod:`common.config_source`).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from common.config_source import (
    MMDET_SCOPE,
    UnsafeConfig,
    config_suffix,
    parse_config,
    resolve_base,
)

REGISTERED_FILE = Path(__file__).with_name("registered_classes.json")
NMS_OPS = frozenset({"nms", "soft_nms"})  # mmcv.ops names batched_nms resolves with eval()
ROI_OPS = frozenset({"RoIAlign", "RoIPool"})  # mmcv.ops classes BaseRoIExtractor resolves with getattr()
SCOPES = frozenset({"mmdet", "mmengine"})
DEFAULT_SCOPE = "mmdet"
MAX_CONFIG_BYTES = 1024 * 1024
MAX_CONFIG_FILES = 32
DELETE_KEY = "_delete_"


class ConfigRefused(Exception):
    """A config fails the gate. ``path`` is the offending key path (``custom_hooks[0].type``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


@functools.lru_cache(maxsize=1)
def registered_names() -> dict[str, frozenset[str]]:
    """``classes`` and ``functions`` registered in the mmdet/mmengine registries (generated file)."""
    data = json.loads(REGISTERED_FILE.read_text())
    return {kind: frozenset(data[kind]) for kind in ("classes", "functions")}


def check_config(data: Any) -> None:
    """Raise :class:`ConfigRefused` for the first thing in ``data`` the gate refuses (see module doc)."""
    if not isinstance(data, dict):
        raise ConfigRefused("", "a config must be a mapping")
    if "custom_imports" in data:
        raise ConfigRefused(
            "custom_imports", "is not allowed: configs may only use modules shipped with mmdet"
        )
    scope = data.get("default_scope")
    if scope is not None and scope != DEFAULT_SCOPE:
        raise ConfigRefused("default_scope", f"must be {DEFAULT_SCOPE!r} (or absent), got {_show(scope)}")
    if "runner_type" in data:
        _check_class(data["runner_type"], "runner_type")
    for path, parent_key, node in _dicts(data, "", ""):
        _check_dict(node, path, parent_key)


def problem(data: Any) -> str:
    """The gate's refusal as one line ("" when the config passes): for stored configs, logs and messages."""
    try:
        check_config(data)
    except ConfigRefused as exc:
        return str(exc)
    return ""


def _check_dict(node: dict[str, Any], path: str, parent_key: str) -> None:
    here = f"{path}." if path else ""
    if "type" in node:
        where, value = f"{here}type", node["type"]
        if parent_key == "nms":
            _check_in(value, NMS_OPS, where, "an nms op (one of: nms, soft_nms)")
        elif parent_key == "roi_layer":
            _check_in(value, ROI_OPS, where, "an mmcv RoI op (one of: RoIAlign, RoIPool)")
        elif parent_key == "collate_fn":
            functions = registered_names()["functions"]
            _check_in(value, functions, where, "a registered mmengine/mmdet collate function")
        else:
            _check_class(value, where)
    if "_scope_" in node and node["_scope_"] not in SCOPES:
        scope = _show(node["_scope_"])
        raise ConfigRefused(f"{here}_scope_", f"must be one of {sorted(SCOPES)}, got {scope}")
    if isinstance(node.get("constructor"), str):
        _check_class(node["constructor"], f"{here}constructor")


def _check_class(value: Any, where: str) -> None:
    if isinstance(value, str) and "." in value:
        raise ConfigRefused(
            where,
            f"{_show(value)} is a dotted name: only class names registered in mmdet/mmengine are allowed",
        )
    _check_in(value, registered_names()["classes"], where, "a registered mmdet/mmengine class")


def _check_in(value: Any, allowed: frozenset[str], where: str, what: str) -> None:
    if not isinstance(value, str):
        raise ConfigRefused(where, f"must be the name of {what}, not a {type(value).__name__}")
    if value not in allowed:
        raise ConfigRefused(where, f"{_show(value)} is not {what}")


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return "'" + text[:120] + ("...'" if len(text) > 120 else "'")


def _dicts(node: Any, path: str, parent_key: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every dict with its key path and the key it sits under (list items inherit their list's key)."""
    if isinstance(node, dict):
        yield path, parent_key, node
        for key, value in node.items():
            yield from _dicts(value, f"{path}.{key}" if path else str(key), str(key))
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from _dicts(value, f"{path}[{index}]", parent_key)


# --- untrusted files: parse, resolve _base_, merge with MMEngine's semantics, check ---


def load_untrusted_config(read: Callable[[str], bytes], key: str, mmdet_configs: Path) -> dict[str, Any]:
    """The merged, checked plain data of the config at ``key`` and its ``_base_`` chain.

    Args:
        read: returns the bytes of an artifact key (NotFound when absent); the size is checked here.
        key: the config's artifact key (already a valid key).
        mmdet_configs: ``mmdet/.mim/configs``; ``mmdet::`` bases are trusted files shipped there.

    Raises:
        ConfigRefused: the file, a base, or the merged result is refused (path "" for file-level problems).
    """
    try:
        data = _load(read, key, mmdet_configs.resolve(), [key], {"count": 0})
    except UnsafeConfig as exc:
        raise ConfigRefused("", str(exc)) from exc
    check_config(data)
    return data


def _load(
    read: Callable[[str], bytes], key: str, mmdet_root: Path, chain: list[str], seen: dict[str, int]
) -> dict[str, Any]:
    seen["count"] += 1
    if seen["count"] > MAX_CONFIG_FILES:
        raise UnsafeConfig(f"more than {MAX_CONFIG_FILES} config files in the _base_ chain")
    raw = read(key)
    if len(raw) > MAX_CONFIG_BYTES:
        raise UnsafeConfig(f"config {key!r} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeConfig(f"config {key!r} is not UTF-8 text") from exc
    try:
        parsed = parse_config(source, config_suffix(key))
        refs = [(entry, resolve_base(entry, key)) for entry in parsed.bases]
    except UnsafeConfig as exc:
        raise UnsafeConfig(f"{key}: {exc}") from exc
    bases = []
    for entry, ref in refs:
        if ref.store_key is None:
            bases.append(_mmdet_base(entry, str(ref.mmdet_path), mmdet_root))
        elif ref.store_key in chain:
            raise UnsafeConfig(f"{key}: _base_ {entry!r} includes itself")
        else:
            bases.append(_load(read, ref.store_key, mmdet_root, [*chain, ref.store_key], seen))
    return _merge(bases, parsed.data) if bases else _without_delete(parsed.data)


def _mmdet_base(entry: str, relative: str, mmdet_root: Path) -> dict[str, Any]:
    """A config shipped with mmdet: trusted code, still loaded without environment or path substitution."""
    from mmengine.config import Config

    path = (mmdet_root / relative).resolve()
    if not path.is_relative_to(mmdet_root) or not path.is_file():
        raise UnsafeConfig(f"_base_ {entry!r} is not a config shipped with mmdet")
    try:
        cfg = Config.fromfile(
            str(path),
            use_predefined_variables=False,
            import_custom_modules=False,
            use_environment_variables=False,
        )
    except Exception as exc:  # a shipped config that needs what we turned off (a lazy-import config...)
        reason = type(exc).__name__
        raise UnsafeConfig(f"_base_ {entry!r} cannot be loaded as a plain config ({reason})") from exc
    # As MMEngine does for a scoped base: its top-level components are built in the mmdet scope.
    scoped = Config._dict_to_config_dict(cfg.to_dict(), scope=MMDET_SCOPE.rstrip(":"))
    return _plain(scoped, entry)


def _merge(bases: list[dict[str, Any]], child: dict[str, Any]) -> dict[str, Any]:
    """MMEngine's ``_base_`` semantics: bases may not share keys; the child merges in (``_delete_``)."""
    from mmengine.config import Config

    merged: dict[str, Any] = {}
    for base in bases:
        shared = sorted(merged.keys() & base.keys())
        if shared:
            raise UnsafeConfig(f"_base_ configs define the same keys: {', '.join(shared[:10])}")
        merged.update(base)
    try:
        result = Config._merge_a_into_b(copy.deepcopy(child), merged)
    except (TypeError, KeyError) as exc:
        raise UnsafeConfig(f"cannot merge the config into its _base_: {exc}") from exc
    return _without_delete(_plain(result, "the merged config"))


def _without_delete(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_delete(v) for k, v in node.items() if k != DELETE_KEY}
    if isinstance(node, list):
        return [_without_delete(v) for v in node]
    return node


def _plain(node: Any, where: str) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v, where) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(v, where) for v in node]
    if node is None or isinstance(node, str | int | float | bool):
        return node
    raise UnsafeConfig(f"{where} holds a {type(node).__name__}, not plain data")
