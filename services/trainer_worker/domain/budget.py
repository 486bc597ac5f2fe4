"""How much of the run's ``max_runtime`` is left to an attempt's training (plain Python)."""

from __future__ import annotations

from typing import Any


def training_budget(
    max_runtime_seconds: float | None, runtime_used_seconds: float, since_claim_seconds: float
) -> float | None:
    """Seconds of training left to the run: ``max_runtime`` less what earlier attempts ran (as training_run
    counted it at the claim) and what this attempt spent since the claim. None: no budget; 0 when spent
    (one iteration still trains, then the run checkpoints, evaluates and is registered)."""
    if max_runtime_seconds is None:
        return None
    return max(0.0, max_runtime_seconds - runtime_used_seconds - since_claim_seconds)


def budget_of(run: Any, since_claim_seconds: float) -> float | None:
    """``training_budget`` of a claimed ``raven.v1.TrainingRun`` (its max_runtime and runtime_used)."""
    if not run.HasField("max_runtime"):
        return None
    return training_budget(
        run.max_runtime.ToTimedelta().total_seconds(),
        run.runtime_used.ToTimedelta().total_seconds(),
        since_claim_seconds,
    )
