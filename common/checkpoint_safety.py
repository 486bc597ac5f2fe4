"""Loading checkpoints that may come from users: ``torch.load(weights_only=True)`` and a narrow allowlist.

Checkpoints are pickles; loading one with ``weights_only=False`` runs whatever code it names. torch >= 2.6
loads with ``weights_only=True`` by default, which refuses mmengine's resume checkpoints (``Unsupported
global: mmengine.logging.history_buffer.HistoryBuffer``). Instead of turning the protection off, we allow the
few types an mmengine training checkpoint legitimately holds:

- ``mmengine.logging.HistoryBuffer`` (the message hub's loss/metric history),
- numpy arrays, dtypes and scalars (the buffer's contents, ``best_score``),
- ``getattr`` restricted to ``HistoryBuffer``'s own statistics methods: ``HistoryBuffer.__getstate__``
  pickles its ``_statistics_methods`` registry as ``getattr(HistoryBuffer, "mean")``; the real
  ``builtins.getattr`` is never allowed.

Everything else (``os.system``, ``subprocess``, ``eval``, any other class) is still refused by torch.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[attr-defined]

__all__ = ["UnsafeCheckpoint", "install_safe_globals", "load_untrusted_checkpoint", "safe_globals"]

_HISTORY_STATISTICS = frozenset({"min", "max", "current", "mean"})
_NUMPY_DTYPES = (
    np.bool_,
    np.uint8,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.float16,
    np.float32,
    np.float64,
)


class UnsafeCheckpoint(Exception):
    """The checkpoint names code or types outside the allowlist (or is not a checkpoint at all)."""


def history_buffer_attribute(owner: object, name: str) -> Any:
    """Stands in for ``builtins.getattr`` while unpickling: only ``HistoryBuffer``'s statistics methods."""
    if owner is HistoryBuffer and name in _HISTORY_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f"getattr({owner!r}, {name!r}) is not allowed in a checkpoint")


def safe_globals() -> list[Any]:
    """The allowlist, as ``torch.serialization.add_safe_globals`` takes it."""
    entries: list[Any] = [
        HistoryBuffer,
        (history_buffer_attribute, "builtins.getattr"),
        np.ndarray,
        np.dtype,
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        (scalar, "numpy.core.multiarray.scalar"),
        (_reconstruct, "numpy._core.multiarray._reconstruct"),
        (scalar, "numpy._core.multiarray.scalar"),
    ]
    # numpy 2 pickles these under numpy._core. A dtype is rebuilt by numpy.dtype(...) and then BUILD-updated,
    # so its concrete class (numpy.dtypes.Float64DType, ...) must be allowed as well.
    entries += sorted({type(np.dtype(t)) for t in _NUMPY_DTYPES}, key=lambda c: c.__name__)
    return entries


def install_safe_globals() -> None:
    """Adds the allowlist to torch's weights-only unpickler (idempotent). Call before mmengine resumes."""
    installed = set(map(_key, torch.serialization.get_safe_globals()))
    missing = [g for g in safe_globals() if _key(g) not in installed]
    if missing:
        torch.serialization.add_safe_globals(missing)


def load_untrusted_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Loads a checkpoint with ``weights_only=True`` and the allowlist; never executes code from it.

    Raises:
        UnsafeCheckpoint: the file names a global outside the allowlist, is not a torch checkpoint, or does
            not hold a dict.
    """
    install_safe_globals()
    try:
        checkpoint = torch.load(Path(path), map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise UnsafeCheckpoint(f"refused to load checkpoint {Path(path).name}: {_culprit(exc)}") from exc
    if not isinstance(checkpoint, dict):
        raise UnsafeCheckpoint(
            f"checkpoint {Path(path).name} holds a {type(checkpoint).__name__}, not a dict"
        )
    return checkpoint


def _key(entry: Any) -> Any:
    return entry if isinstance(entry, tuple) else (entry, f"{entry.__module__}.{entry.__qualname__}")


def _culprit(exc: BaseException) -> str:
    """torch's message starts with advice to use weights_only=False; keep the line that names the culprit."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    culprit = [
        line for line in lines if "Unsupported global" in line or "Trying to" in line or "not allowed" in line
    ]
    return (culprit or lines or [type(exc).__name__])[0]
