"""What the user asked for in a run, validated and resolved at Create (plain Python)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BaseSplit:
    """What the fine-tune guard needs of a base model: what it trained on (a dataset version's name or a plain
    reference) and its training run's split manifest (``train_sha256``: the content hashes it trained on)."""

    model: str  # "trainedModels/{id}"
    dataset: str
    split_manifest: str  # artifact key; empty when its run recorded none


@dataclass(frozen=True)
class RunSpec:
    """What the user asked for, validated and resolved at Create; immutable afterwards."""

    dataset: str
    model_template: str
    class_names: tuple[str, ...]
    hyperparameters: dict[str, Any]
    max_attempts: int
    base_model: str = ""
    base_model_checkpoint: str = ""
    config_text: str = ""
    config_data: dict[str, Any] = field(default_factory=dict)
    config_sha256: str = ""
    # A run on a dataset version: its name, and what the worker needs to build the frozen split (snapshot and
    # split sha256, split and file manifests, blob prefix, annotation files), resolved at Create. Empty for a
    # plain dataset reference.
    dataset_version: str = ""
    dataset_source: dict[str, Any] = field(default_factory=dict)
    # Time budgets in seconds (domain/budgets.py); None = none.
    max_runtime_seconds: float | None = None
    max_pending_seconds: float | None = None
    # The fine-tune guard still owed when the version becomes READY: a run on a plain dataset reference whose
    # implicit version was not READY at Create, with a base model and without allow_split_overlap. None
    # otherwise (no base model, overlap allowed, or checked at Create).
    split_guard: BaseSplit | None = None
    # The learning rate training starts from: hyperparameters' scaled by auto_scale_lr (common.precision).
    effective_learning_rate: float | None = None
