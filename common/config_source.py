"""Untrusted MMEngine config files read as plain data, never executed.

MMEngine *executes* Python configs (after pasting ``{{ fileDirname }}``, ``{{$ENV:default}}`` and
``{{_base_.x}}`` substitutions into the source text), so an untrusted config never goes near
``Config.fromfile``. Instead:

- ``.py`` is parsed with :mod:`ast` and the tree is evaluated here, accepting only plain data: assignments to
  simple names of literals, lists, tuples, dicts, ``dict(key=value, ...)`` calls, names assigned earlier in
  the same file and arithmetic between number literals (``0.02 / 8``). No imports, attribute access,
  subscripts, other calls, lambdas, comprehensions or f-strings: nothing that could reach a builtin or a
  module.
- ``.json`` is read with :mod:`json`, ``.yaml`` with ``yaml.safe_load`` (MMEngine's own loader would build
  Python objects from ``!!python/...`` tags).
- ``{{`` anywhere in the text is refused, in every format: it is MMEngine's substitution syntax, and a
  config that needs it was written to be executed.

``_base_`` entries are returned unresolved; :func:`resolve_base` confines them to mmdet's shipped configs
(``mmdet::...``) or to the artifact store.
"""

from __future__ import annotations

import ast
import copy
import json
import operator
import posixpath
from dataclasses import dataclass
from typing import Any

import yaml  # type: ignore[import-untyped]

from common.artifacts import normalize_key
from common.errors import AppError

CONFIG_SUFFIXES = (".py", ".json", ".yaml", ".yml")
MMDET_SCOPE = "mmdet::"
BASE_KEY = "_base_"
_NUMERIC_OPS: dict[type[ast.operator], Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_MAX_NUMBER = 1e18  # products of literals stay far below anything that costs memory or time


class UnsafeConfig(Exception):
    """The config is refused; the message says which construct and where."""


@dataclass(frozen=True)
class ParsedConfig:
    """One config file as plain data: its variables and its (unresolved) ``_base_`` entries."""

    data: dict[str, Any]
    bases: list[str]


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


def parse_config(source: str, suffix: str) -> ParsedConfig:
    """Plain data of one untrusted config file (see the module docstring for what is accepted)."""
    if "{{" in source:
        raise UnsafeConfig(
            "'{{' is not allowed anywhere in a config: MMEngine's {{ }} substitutions paste text into "
            "the config before running it; write the value itself"
        )
    if suffix == ".py":
        data = _evaluate_python(source)
    else:
        try:
            data = json.loads(source) if suffix == ".json" else yaml.safe_load(source)
        except (ValueError, yaml.YAMLError) as exc:
            raise UnsafeConfig(f"config is not valid {suffix[1:].upper()} data: {exc}") from exc
        if not isinstance(data, dict):
            raise UnsafeConfig("config must be a mapping at the top level")
        _check_plain(data, "")
    if "custom_imports" in data:
        raise UnsafeConfig("custom_imports is not allowed: configs may only use modules shipped with mmdet")
    bases = _as_base_list(data.pop(BASE_KEY, []))
    return ParsedConfig(data=data, bases=bases)


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


def _check_plain(value: Any, where: str) -> None:
    """JSON and YAML data: str keys; str, int, float, bool, None, lists and mappings only."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UnsafeConfig(f"{where or 'top level'}: keys must be strings, found {key!r}")
            _check_plain(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
    elif not (value is None or isinstance(value, str | int | float | bool)):
        raise UnsafeConfig(f"{where}: a {type(value).__name__} value is not plain data")


# --- Python configs: a tiny evaluator of the plain-data subset ---


def _evaluate_python(source: str) -> dict[str, Any]:
    try:
        tree = ast.parse(source, mode="exec")
    except SyntaxError as exc:
        raise UnsafeConfig(f"config is not valid Python: {exc.msg} (line {exc.lineno})") from exc
    variables: dict[str, Any] = {}
    for index, node in enumerate(tree.body):
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # module docstring
        if not isinstance(node, ast.Assign):
            raise UnsafeConfig(
                f"line {node.lineno}: only assignments are allowed, found {type(node).__name__}"
            )
        names = []
        for target in node.targets:
            if not isinstance(target, ast.Name):
                raise UnsafeConfig(f"line {node.lineno}: assign to plain names only")
            if target.id.startswith("__"):
                raise UnsafeConfig(f"line {node.lineno}: dunder name {target.id!r} is not allowed")
            if target.id == "custom_imports":
                raise UnsafeConfig(
                    "custom_imports is not allowed: configs may only use modules shipped with mmdet"
                )
            names.append(target.id)
        value = _value(node.value, variables)
        for name in names:
            variables[name] = copy.deepcopy(value)
    return variables


def _value(node: ast.AST, variables: dict[str, Any]) -> Any:
    where = f"line {getattr(node, 'lineno', '?')}"
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, str | int | float | bool | type(None)):
            raise UnsafeConfig(f"{where}: literal of type {type(node.value).__name__} is not allowed")
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_value(element, variables) for element in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise UnsafeConfig(f"{where}: '**' unpacking is not allowed")
            name = _value(key, variables)
            if not isinstance(name, str):
                raise UnsafeConfig(f"{where}: dict keys must be strings, found {name!r}")
            out[name] = _value(value, variables)
        return out
    if isinstance(node, ast.Name):
        # Only names this file assigned before: never builtins, so no path to __import__, open, eval...
        if not isinstance(node.ctx, ast.Load) or node.id not in variables:
            raise UnsafeConfig(f"{where}: name {node.id!r} is not a variable assigned earlier in the config")
        return copy.deepcopy(variables[node.id])
    if isinstance(node, ast.Call):
        return _dict_call(node, variables)
    if isinstance(node, ast.UnaryOp | ast.BinOp):
        return _number(node)
    raise UnsafeConfig(f"{where}: {type(node).__name__} is not allowed in a config (plain data only)")


def _dict_call(node: ast.Call, variables: dict[str, Any]) -> dict[str, Any]:
    where = f"line {node.lineno}"
    if not (isinstance(node.func, ast.Name) and node.func.id == "dict") or "dict" in variables:
        raise UnsafeConfig(f"{where}: the only call allowed is dict(...), found {ast.unparse(node.func)!r}")
    if node.args:
        raise UnsafeConfig(f"{where}: dict(...) takes keyword arguments only")
    out = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise UnsafeConfig(f"{where}: '**' unpacking is not allowed")
        out[keyword.arg] = _value(keyword.value, variables)
    return out


def _number(node: ast.AST) -> int | float:
    """Arithmetic between number literals only (``0.02 / 8``): no names, so no ``'x' * 10**12`` bombs."""
    where = f"line {getattr(node, 'lineno', '?')}"
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _number(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _NUMERIC_OPS:
        left, right = _number(node.left), _number(node.right)
        if abs(left) > _MAX_NUMBER or abs(right) > _MAX_NUMBER:
            raise UnsafeConfig(f"{where}: number too large")
        try:
            result: int | float = _NUMERIC_OPS[type(node.op)](left, right)
        except ZeroDivisionError as exc:
            raise UnsafeConfig(f"{where}: division by zero") from exc
        return result
    raise UnsafeConfig(f"{where}: only arithmetic between number literals is allowed")
