"""Training precision (``Hyperparameters.precision``) and learning-rate scaling (``auto_scale_lr``): their
values, checks, and what they make of an MMDetection config.

- ``fp32`` (default) trains as the template does; ``amp_fp16`` and ``amp_bf16`` train with MMEngine's
  ``AmpOptimWrapper`` (autocast; dynamic loss scaling for fp16), on CUDA only: :func:`device_problem` is what
  a worker on another device reports instead of training.
- ``auto_scale_lr`` (default on) scales the learning rate by the effective batch (gpus x batch_size) over the
  template's base batch size (its default batch_size), through MMEngine's ``auto_scale_lr`` as MMDetection's
  ``--auto-scale-lr`` does; :func:`effective_learning_rate` is the rate the run then trains with.

Pure data: no torch, mmengine or mmdet import.
"""

from __future__ import annotations

from typing import Any

FP32 = 1  # raven.v1.Precision numbers → names (0, unset, is fp32)
PRECISIONS: dict[int, str] = {0: "fp32", 1: "fp32", 2: "amp_fp16", 3: "amp_bf16"}
AMP_DTYPES: dict[str, str] = {"amp_fp16": "float16", "amp_bf16": "bfloat16"}


def precision_name(value: int | None) -> str:
    return PRECISIONS.get(int(value or 0), f"unknown ({value})")


def precision_problem(value: object) -> str | None:
    """What is wrong with a requested precision (None: unset or fine)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value in PRECISIONS):
        return None
    return f"must be one of FP32, AMP_FP16, AMP_BF16, got {value!r}"


def device_problem(precision: int | None, device: str) -> str | None:
    """Why a worker on ``device`` (``cpu``, ``cuda[:N]``) cannot train at ``precision``; None: it can."""
    name = precision_name(precision)
    if name in AMP_DTYPES and not device.startswith("cuda"):
        return (
            f"precision {name.upper()} needs a CUDA GPU, but this worker trains on {device}: create the run "
            "again with precision FP32, or let a GPU worker take it"
        )
    return None


def apply_precision(cfg: dict[str, Any], precision: int | None) -> None:
    """An AMP precision wraps the optimizer in ``AmpOptimWrapper`` (its other settings kept); FP32 keeps (or
    restores, over a base model's stored config) the plain ``OptimWrapper``."""
    wrapper = cfg.setdefault("optim_wrapper", {})
    dtype = AMP_DTYPES.get(precision_name(precision))
    for key in ("dtype", "loss_scale"):
        wrapper.pop(key, None)
    if dtype is None:
        if wrapper.get("type") == "AmpOptimWrapper":
            wrapper["type"] = "OptimWrapper"
        return
    wrapper["type"] = "AmpOptimWrapper"
    wrapper["dtype"] = dtype
    wrapper["loss_scale"] = "dynamic"


def apply_lr_scaling(cfg: dict[str, Any], enabled: bool, base_batch_size: int) -> None:
    """MMEngine scales the optimizer's lr by world_size x batch_size / ``base_batch_size`` when training
    starts."""
    cfg["auto_scale_lr"] = {"enable": bool(enabled), "base_batch_size": int(base_batch_size)}


def effective_learning_rate(
    learning_rate: float, batch_size: int, gpus: int, base_batch_size: int, enabled: bool
) -> float:
    """The rate training starts from (before warm-up and schedule) under MMEngine's auto_scale_lr rule."""
    if not enabled or base_batch_size <= 0:
        return float(learning_rate)
    return float(learning_rate) * max(1, gpus) * batch_size / base_batch_size
