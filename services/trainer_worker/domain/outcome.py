"""What a training attempt ends with, and the progress it reports on the way. Plain data, picklable.

``FailureKind`` names match ``raven.v1.FailureKind`` so the publisher maps them by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class FailureKind(StrEnum):
    INVALID_DATASET = "INVALID_DATASET"
    INVALID_CONFIG = "INVALID_CONFIG"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    WORKER_LOST = "WORKER_LOST"
    CHILD_CRASHED = "CHILD_CRASHED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    ARTIFACT_MISMATCH = "ARTIFACT_MISMATCH"
    TIMED_OUT = "TIMED_OUT"


class Phase(StrEnum):
    """Names match ``raven.v1.RunPhase``; the training child reports TRAINING and EVALUATING."""

    PREPARING_DATASET = "PREPARING_DATASET"
    TRAINING = "TRAINING"
    EVALUATING = "EVALUATING"
    UPLOADING = "UPLOADING"


@dataclass(frozen=True)
class Failure:
    """A failed attempt: ``message`` says what happened and what to do; ``details`` name culprits."""

    kind: FailureKind
    message: str
    details: tuple[str, ...] = ()


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
