"""What a training attempt ends with, and the progress it reports on the way. Plain data, picklable.

``FailureKind`` and ``Failure`` live in :mod:`common.failures` (one home with the training_run service).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from common.failures import Failure, FailureKind

__all__ = ["Cancelled", "Failure", "FailureKind", "Outcome", "Phase", "Progress", "TrainingResult"]


class Phase(StrEnum):
    """Names match ``raven.v1.RunPhase``; the training child reports TRAINING and EVALUATING."""

    PREPARING_DATASET = "PREPARING_DATASET"
    TRAINING = "TRAINING"
    EVALUATING = "EVALUATING"
    UPLOADING = "UPLOADING"


@dataclass(frozen=True)
class Cancelled:
    """Training stopped on request; ``last_checkpoint`` is kept so the run could be resumed."""

    message: str
    last_checkpoint: str | None = None


@dataclass(frozen=True)
class TrainingResult:
    """A completed training and evaluation; every path lies in the attempt's work dir."""

    best_checkpoint: str
    last_checkpoint: str | None
    metrics_path: str
    curves_path: str
    log_path: str
    metrics: dict[str, Any]
    parameter_count: int
    versions: dict[str, str]
    training_seconds: float
    epochs: int
    iterations_run: int  # iterations trained by this attempt (fewer than max_iters when resumed)
    resumed_from: str | None = None
    stopped_early: bool = False  # early stopping ended training before max_epochs (``epochs`` = last trained)
    stopped_by_time_budget: bool = False  # the run's max_runtime ended training (checkpointed, evaluated)


Outcome = TrainingResult | Failure | Cancelled


@dataclass(frozen=True)
class Progress:
    """One progress report from the training child.

    ``kind`` is ``phase`` (phase change), ``iter`` (rate-limited training iteration), ``epoch`` (end of a
    training epoch, after its checkpoint is written) or ``val`` (validation metrics).
    """

    kind: str
    phase: Phase
    epoch: int
    max_epochs: int
    iter: int
    max_iters: int
    losses: dict[str, float] = field(default_factory=dict)
    lr: float = 0.0
    eta_seconds: float = 0.0
    val_metrics: dict[str, float] = field(default_factory=dict)
    time: float = 0.0
