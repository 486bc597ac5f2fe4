"""Static checks of an untrusted MMEngine config before anything loads it.

MMEngine *executes* Python configs, so a Python config is accepted only when its syntax tree is plain data:
assignments to simple names of literals, lists, tuples, dicts, ``dict(key=value, ...)`` calls, names assigned
earlier in the same file, and arithmetic between numeric literals (``0.02 / 8``). No imports, no attribute
access, no subscripts, no other calls, no lambdas, comprehensions, f-strings or ``{{ }}`` substitutions -
nothing that could reach a builtin or a module. What passes this check evaluates to the same data under
``exec`` as it would under ``ast.literal_eval`` extended with ``dict``, so loading it afterwards cannot run
code.

JSON configs are plain data; YAML configs must load with ``yaml.safe_load`` (MMEngine itself uses the full
loader, which would construct arbitrary Python objects from ``!!python/...`` tags). In every format the
``_base_`` entries must be strings (or a list of strings) and ``custom_imports`` is refused.
"""

from __future__ import annotations

import ast
import json
import posixpath
from dataclasses import dataclass
from typing import Any

import yaml  # type: ignore[import-untyped]

from common.artifacts import normalize_key
from common.errors import AppError

CONFIG_SUFFIXES = (".py", ".json", ".yaml", ".yml")
MMDET_SCOPE = "mmdet::"
_NUMERIC_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod)


class UnsafeConfig(Exception):
    """The config is refused; the message says which construct and where."""


@dataclass(frozen=True)
class BaseRef:
    """A resolved ``_base_`` entry: a config shipped in mmdet (relative to its configs) or a store key."""

    mmdet_path: str | None = None
    store_key: str | None = None


def config_suffix(key: str) -> str:
    suffix = posixpath.splitext(key)[1].lower()
    if suffix not in CONFIG_SUFFIXES:
        raise UnsafeConfig(
            f"config {key!r} must be a .py, .json or .yaml file, not {suffix or 'no extension'!r}"
        )
    return suffix


def base_entries(source: str, suffix: str) -> list[str]:
    """Check one config file and return its ``_base_`` entries (unresolved)."""
    if suffix == ".py":
        return _check_python(source)
    try:
        data = json.loads(source) if suffix == ".json" else yaml.safe_load(source)
    except (ValueError, yaml.YAMLError) as exc:
        raise UnsafeConfig(f"config is not valid {suffix[1:].upper()} data: {exc}") from exc
    if not isinstance(data, dict):
        raise UnsafeConfig("config must be a mapping at the top level")
    if "custom_imports" in data:
        raise UnsafeConfig("custom_imports is not allowed: configs may only use modules shipped with mmdet")
    return _as_base_list(data.get("_base_", []))


def resolve_base(entry: str, config_key: str) -> BaseRef:
    """``mmdet::x.py`` stays inside mmdet's configs; anything else must resolve inside the artifact store."""
    if entry.startswith(MMDET_SCOPE):
        path = entry[len(MMDET_SCOPE) :]
        try:
            normalized = normalize_key(path)
        except AppError as exc:
            raise UnsafeConfig(f"_base_ {entry!r} escapes mmdet's configs: {exc.message}") from exc
        config_suffix(normalized)
        return BaseRef(mmdet_path=normalized)
    if "::" in entry:
        raise UnsafeConfig(f"_base_ {entry!r}: only the mmdet:: scope is allowed")
    if entry.startswith("/") or ":" in entry or "\\" in entry:
        raise UnsafeConfig(f"_base_ {entry!r} must be a relative path inside the artifact store")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(config_key), entry))
    try:
        key = normalize_key(joined)
    except AppError as exc:
        raise UnsafeConfig(
            f"_base_ {entry!r} does not resolve inside the artifact store: {exc.message}"
        ) from exc
    config_suffix(key)
    return BaseRef(store_key=key)


def _as_base_list(value: Any) -> list[str]:
    items = value if isinstance(value, list | tuple) else [value]
    if not all(isinstance(v, str) and v for v in items):
        raise UnsafeConfig("_base_ must be a string or a list of strings")
    return list(items)


def _check_python(source: str) -> list[str]:
    try:
        tree = ast.parse(source, mode="exec")
    except SyntaxError as exc:
        raise UnsafeConfig(f"config is not valid Python: {exc.msg} (line {exc.lineno})") from exc
    assigned: set[str] = set()
    bases: list[str] = []
    for index, node in enumerate(tree.body):
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # module docstring
        if not isinstance(node, ast.Assign):
            raise UnsafeConfig(
                f"line {node.lineno}: only assignments are allowed, found {type(node).__name__}"
            )
        for target in node.targets:
            if not isinstance(target, ast.Name):
                raise UnsafeConfig(f"line {node.lineno}: assign to plain names only")
            if target.id.startswith("__"):
                raise UnsafeConfig(f"line {node.lineno}: dunder name {target.id!r} is not allowed")
            if target.id == "custom_imports":
                raise UnsafeConfig(
                    "custom_imports is not allowed: configs may only use modules shipped with mmdet"
                )
        _check_value(node.value, assigned)
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if "_base_" in names:
            bases = _as_base_list(ast.literal_eval(node.value))
        assigned.update(names)
    return bases


def _check_value(node: ast.AST, assigned: set[str]) -> None:
    where = f"line {getattr(node, 'lineno', '?')}"
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, str | int | float | bool | type(None)):
            raise UnsafeConfig(f"{where}: literal of type {type(node.value).__name__} is not allowed")
        return
    if isinstance(node, ast.List | ast.Tuple):
        for element in node.elts:
            _check_value(element, assigned)
        return
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise UnsafeConfig(f"{where}: '**' unpacking is not allowed")
            _check_value(key, assigned)
            _check_value(value, assigned)
        return
    if isinstance(node, ast.Name):
        # Only names this file assigned before: never builtins, so no path to __import__, open, eval...
        if not isinstance(node.ctx, ast.Load) or node.id not in assigned:
            raise UnsafeConfig(f"{where}: name {node.id!r} is not a variable assigned earlier in the config")
        return
    if isinstance(node, ast.Call):
        _check_dict_call(node, assigned)
        return
    if isinstance(node, ast.UnaryOp | ast.BinOp):
        _check_numeric(node)
        return
    raise UnsafeConfig(f"{where}: {type(node).__name__} is not allowed in a config (plain data only)")


def _check_dict_call(node: ast.Call, assigned: set[str]) -> None:
    where = f"line {node.lineno}"
    if not (isinstance(node.func, ast.Name) and node.func.id == "dict") or "dict" in assigned:
        raise UnsafeConfig(f"{where}: the only call allowed is dict(...), found {ast.unparse(node.func)!r}")
    if node.args:
        raise UnsafeConfig(f"{where}: dict(...) takes keyword arguments only")
    for keyword in node.keywords:
        if keyword.arg is None:
            raise UnsafeConfig(f"{where}: '**' unpacking is not allowed")
        _check_value(keyword.value, assigned)


def _check_numeric(node: ast.AST) -> None:
    """Arithmetic between number literals only (``0.02 / 8``): no names, so no ``'x' * 10**12`` bombs."""
    where = f"line {getattr(node, 'lineno', '?')}"
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        _check_numeric(node.operand)
        return
    if isinstance(node, ast.BinOp) and isinstance(node.op, _NUMERIC_OPS):
        _check_numeric(node.left)
        _check_numeric(node.right)
        return
    raise UnsafeConfig(f"{where}: only arithmetic between number literals is allowed")
