"""Verification of an imported model: the config is read as plain data and passes the config gate
(:mod:`common.config_gate`), the checkpoint loads safely on CPU and its classification head matches the class
list. Blocking; the service runs it in a thread.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.artifacts import ArtifactStore, StoredArtifact
from common.config_data import canonical, config_sha256
from common.config_gate import MAX_CONFIG_BYTES, ConfigRefused, load_untrusted_config
from common.errors import FieldViolation, InvalidArgument, NotFound
from common.mmdet_config import mmdet_config_dir

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
    """Read the config and its store-relative bases as plain data (never executed) and pass the gate."""
    try:
        data = load_untrusted_config(_reader(store), key, mmdet_config_dir())
    except ConfigRefused as exc:
        raise _refuse("config_uri", str(exc)) from exc
    counts = sorted(set(_num_classes(data.get("model"))))
    if not counts:
        raise _refuse("config_uri", "the config's model has no num_classes, so its classes cannot be checked")
    if counts != [len(class_names)]:
        raise _refuse(
            "class_names",
            f"{len(class_names)} class names given but the config's heads have num_classes {counts}",
        )
    data = canonical(data)
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    return VerifiedConfig(data=data, text=text, sha256=config_sha256(data), num_classes=counts[0])


def _reader(store: ArtifactStore) -> Callable[[str], bytes]:
    def read(key: str) -> bytes:
        try:
            if store.size(key) > MAX_CONFIG_BYTES:
                raise _refuse("config_uri", f"config {key!r} is larger than {MAX_CONFIG_BYTES} bytes")
            return store.read_bytes(key)
        except NotFound as exc:
            raise _refuse("config_uri", f"config {key!r} is not in the artifact store") from exc

    return read


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
