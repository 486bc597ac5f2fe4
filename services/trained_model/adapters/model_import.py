"""Verification of an imported model: the config loads with MMEngine, the checkpoint loads safely on CPU and
its classification head matches the class list. Blocking; the service runs it in a thread.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.artifacts import ArtifactStore, StoredArtifact
from common.errors import FieldViolation, InvalidArgument, NotFound
from common.mmdet_config import config_sha256, mmdet_config_dir
from services.trained_model.adapters.config_safety import (
    UnsafeConfig,
    base_entries,
    config_suffix,
    resolve_base,
)

MAX_CONFIG_BYTES = 1024 * 1024
MAX_CONFIG_FILES = 32
MAX_ANCHORS_PER_LOCATION = 9
# Classification output layers: fc_cls (two-stage), rtm_cls.N, retina_cls, conv_cls, multi_level_conv_cls.N...
_CLS_WEIGHT = re.compile(r"(?:^|\.)(?P<module>[A-Za-z0-9_]*cls)(?:\.\d+)?\.weight$")


@dataclass(frozen=True)
class VerifiedConfig:
    data: dict[str, Any]  # merged, plain JSON data
    text: str
    sha256: str
    num_classes: int


@dataclass(frozen=True)
class VerifiedCheckpoint:
    parameter_count: int


def _refuse(field: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {message}", [FieldViolation(field, message)])


# ----------------------------------------------------------------------------------------------------- config


def verify_config(store: ArtifactStore, key: str, class_names: list[str]) -> VerifiedConfig:
    """Fetch the config and its store-relative bases, check each statically, then load them with MMEngine."""
    from mmengine.config import Config

    try:
        config_suffix(key)
    except UnsafeConfig as exc:
        raise _refuse("config_uri", str(exc)) from exc
    with tempfile.TemporaryDirectory(prefix="raven-import-") as tmp:
        root = Path(tmp)
        _fetch_checked(store, key, root)
        try:
            cfg = Config.fromfile(str(root / key), import_custom_modules=False)
        except Exception as exc:
            raise _refuse(
                "config_uri", f"MMEngine cannot load the config: {type(exc).__name__}: {exc}"
            ) from exc
    data = _plain(cfg.to_dict())
    if "custom_imports" in data:
        raise _refuse("config_uri", "custom_imports is not allowed (also not through a base config)")
    counts = sorted(set(_num_classes(data.get("model"))))
    if not counts:
        raise _refuse("config_uri", "the config's model has no num_classes, so its classes cannot be checked")
    if counts != [len(class_names)]:
        raise _refuse(
            "class_names",
            f"{len(class_names)} class names given but the config's heads have num_classes {counts}",
        )
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    return VerifiedConfig(data=data, text=text, sha256=config_sha256(data), num_classes=counts[0])


def _fetch_checked(store: ArtifactStore, key: str, root: Path) -> None:
    pending, seen = [key], set()
    mmdet_root = mmdet_config_dir().resolve()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        if len(seen) > MAX_CONFIG_FILES:
            raise _refuse("config_uri", f"more than {MAX_CONFIG_FILES} config files in the _base_ chain")
        try:
            if store.size(current) > MAX_CONFIG_BYTES:
                raise _refuse("config_uri", f"config {current!r} is larger than {MAX_CONFIG_BYTES} bytes")
            raw = store.read_bytes(current)
        except NotFound as exc:
            raise _refuse("config_uri", f"config {current!r} is not in the artifact store") from exc
        try:
            source = raw.decode("utf-8")
            for entry in base_entries(source, config_suffix(current)):
                ref = resolve_base(entry, current)
                if ref.store_key is not None:
                    pending.append(ref.store_key)
                elif (
                    not (mmdet_root / str(ref.mmdet_path)).resolve().is_relative_to(mmdet_root)
                    or not (mmdet_root / str(ref.mmdet_path)).is_file()
                ):
                    raise UnsafeConfig(f"_base_ {entry!r} is not a config shipped with mmdet")
        except UnicodeDecodeError as exc:
            raise _refuse("config_uri", f"config {current!r} is not UTF-8 text") from exc
        except UnsafeConfig as exc:
            raise _refuse("config_uri", f"{current}: {exc}") from exc
        target = root / current
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(raw)


def _plain(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(v) for v in data]
    if data is None or isinstance(data, str | int | float | bool):
        return data
    raise _refuse("config_uri", f"the config holds a {type(data).__name__}, not plain data")


def _num_classes(node: Any) -> Iterator[int]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "num_classes" and isinstance(value, int) and not isinstance(value, bool):
                yield value
            else:
                yield from _num_classes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _num_classes(value)


# ------------------------------------------------------------------------------------------------- checkpoint


def head_class_problems(shapes: Mapping[str, tuple[int, ...]], num_classes: int) -> list[str]:
    """Compare classification output layers with ``num_classes``; empty when they agree.

    ``fc_cls`` of two-stage heads has ``num_classes + 1`` rows (softmax with background) or ``num_classes``
    (sigmoid); dense heads have ``anchors * num_classes`` output channels. RPN heads (class-agnostic) are
    skipped.
    """
    found = {
        key: shape
        for key, shape in shapes.items()
        if (m := _CLS_WEIGHT.search(key)) and not m.group("module").startswith("rpn") and shape
    }
    if not found:
        return [
            "no classification head weights (e.g. '*.fc_cls.weight', '*.rtm_cls.0.weight') in the checkpoint"
        ]
    problems = []
    for key, shape in sorted(found.items()):
        rows = shape[0]
        if key.endswith("fc_cls.weight"):
            ok = rows in (num_classes, num_classes + 1)
        else:
            ok = rows % num_classes == 0 and 1 <= rows // num_classes <= MAX_ANCHORS_PER_LOCATION
        if not ok:
            problems.append(f"{key} has {rows} output rows, which does not fit {num_classes} classes")
    return problems


def load_state_dict(path: Path) -> dict[str, Any]:
    """Load without executing anything from the file: weights_only unpickling on CPU with an allowlist."""
    from common.checkpoint_safety import (
        load_untrusted_checkpoint,  # imports torch: only when importing a model
    )

    try:
        loaded = load_untrusted_checkpoint(path)
    except Exception as exc:  # UnsafeCheckpoint, or torch failing on a file that is no checkpoint at all
        message = f"not a loadable weights-only checkpoint: {type(exc).__name__}: {exc}"
        raise _refuse("checkpoint_uri", message) from exc
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not state:
        raise _refuse("checkpoint_uri", "the checkpoint holds no state dict")
    return state


def verify_checkpoint(local: Path, num_classes: int) -> VerifiedCheckpoint:
    """Check a local copy of the checkpoint (the same bytes are then stored: what was verified is kept)."""
    state = load_state_dict(local)
    shapes = {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}
    problems = head_class_problems(shapes, num_classes)
    if problems:
        raise InvalidArgument(
            "the checkpoint does not match the config's classes: " + "; ".join(problems[:3]),
            [FieldViolation("checkpoint_uri", p) for p in problems[:10]],
        )
    count = sum(int(v.numel()) for v in state.values() if hasattr(v, "numel"))
    return VerifiedCheckpoint(parameter_count=count)


@dataclass(frozen=True)
class ImportedFiles:
    config: VerifiedConfig
    config_artifact: StoredArtifact
    checkpoint_artifact: StoredArtifact
    parameter_count: int


def verify_and_store(
    store: ArtifactStore, config_key: str, checkpoint_key: str, class_names: list[str], prefix: str
) -> ImportedFiles:
    """Verify both files and copy them under ``prefix`` (the model's own keys, deleted with the model)."""
    config = verify_config(store, config_key, class_names)
    with tempfile.TemporaryDirectory(prefix="raven-import-") as tmp:
        local = Path(tmp) / "checkpoint.pth"
        try:
            store.get_file(checkpoint_key, local)
        except NotFound as exc:
            raise _refuse(
                "checkpoint_uri", f"checkpoint {checkpoint_key!r} is not in the artifact store"
            ) from exc
        checked = verify_checkpoint(local, config.num_classes)
        checkpoint_artifact = store.put_file(f"{prefix}/checkpoint.pth", local)
    config_artifact = store.put_bytes(f"{prefix}/config.json", config.text.encode())
    return ImportedFiles(config, config_artifact, checkpoint_artifact, checked.parameter_count)
