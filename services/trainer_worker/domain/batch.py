"""An attempt's batch size in its training config.

training_run decides what each attempt trains with (after an out-of-memory attempt: half the batch, the
learning rate scaled with it) and sends it in the job's hyperparameters. The config resolved at Create holds
the run's first batch size; the attempt's replaces it, and mmengine's auto-scale-LR rule (``lr * batch /
base_batch``, applied when training starts) scales the learning rate, exactly as training_run recorded it.
Plain Python.
"""

from __future__ import annotations

from typing import Any


def with_attempt_batch(config: dict[str, Any], batch_size: int | None) -> dict[str, Any]:
    """``config`` training with ``batch_size`` (None, or the config's own: unchanged)."""
    loader = config.get("train_dataloader") or {}
    current = loader.get("batch_size")
    if not batch_size or not current or int(current) == batch_size:
        return config
    scaling = config.get("auto_scale_lr") or {}
    # already scaling (auto_scale_lr, the default since issue 17) from the template's base: keep that base,
    # the rate follows the batch all the same; else scale from the run's own batch
    base = scaling.get("base_batch_size") if scaling.get("enable") else None
    return {
        **config,
        "train_dataloader": {**loader, "batch_size": batch_size},
        "auto_scale_lr": {"enable": True, "base_batch_size": int(base or current)},
    }
