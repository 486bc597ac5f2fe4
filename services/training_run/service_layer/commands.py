"""Commands the entrypoints build from requests and events (plain data, no protobuf)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.training_run.domain.model import Failure, Phase


@dataclass(frozen=True)
class CreateTrainingRun:
    display_name: str
    dataset: str
    model_template: str
    description: str = ""
    base_model: str = ""
    class_names: tuple[str, ...] = ()
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # the fields set; absent = default
    request_id: str = ""
    validate_only: bool = False
    auth_metadata: tuple[tuple[str, str], ...] = ()  # forwarded to trained_model
    dataset_version: str = ""  # "datasets/{id}/versions/{n}", instead of dataset
    allow_split_overlap: bool = False  # accept a base model trained on the version's val/test images
    max_runtime_seconds: float | None = None  # time budgets (domain/budgets.py); None = unset
    max_pending_seconds: float | None = None


@dataclass(frozen=True)
class ListTrainingRuns:
    page_size: int = 0
    page_token: str = ""
    states: tuple[int, ...] = ()
    owner: str = ""
    dataset: str = ""
    base_model: str = ""
    model_template: str = ""


@dataclass(frozen=True)
class WatchTrainingRuns:
    states: tuple[int, ...] = ()
    owner: str = ""
    dataset: str = ""
    model_template: str = ""
    base_model: str = ""  # not in the request (yet): the filter is the one ListTrainingRuns uses


@dataclass(frozen=True)
class UpdateTrainingRun:
    name: str
    paths: tuple[str, ...]
    display_name: str = ""
    description: str = ""
    etag: str = ""


@dataclass(frozen=True)
class ReportedEvent:
    """A RunEvent from a worker or from trained_model, with its events-stream sequence."""

    run_id: str
    attempt: int
    seq: int
    kind: str  # the RunEvent payload field name
    phase: Phase | None = None
    progress: bytes | None = None
    failure: Failure | None = None
    trained_model_id: str = ""
    lines: tuple[str, ...] = ()
    reason: str = ""
    stopped_epoch: int | None = None  # completed: early stopping ended training after this epoch
    stopped_by_time_budget: bool = False  # completed: the run's max_runtime ended training
