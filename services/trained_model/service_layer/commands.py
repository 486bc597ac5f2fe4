"""Commands the service layer handles (translated from protobuf by the entrypoints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.trained_model.domain.model import Artifact


@dataclass(frozen=True)
class RegisterTrainedModel:
    """From a worker's ``completed`` event."""

    run_id: str
    attempt: int
    owner: str
    display_name: str
    artifacts: list[Artifact]
    base_model_id: str = ""
    dataset: str = ""
    dataset_snapshot_sha256: str = ""
    split_sha256: str = ""
    dataset_reference: str = ""
    class_names: list[str] = field(default_factory=list)
    model_template: str = ""
    config_text: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    config_sha256: str = ""
    evaluation: dict[str, Any] = field(default_factory=dict)
    bbox_map: float | None = None
    training_seconds: float = 0.0
    parameter_count: int = 0
    framework_versions: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    epochs: int = 0
    learning_rate: float = 0.0
    average_loss: float = 0.0


@dataclass(frozen=True)
class ImportTrainedModel:
    display_name: str
    config_uri: str
    checkpoint_uri: str
    class_names: list[str]
    description: str = ""
    model_template: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class ListTrainedModels:
    page_size: int = 0
    page_token: str = ""
    display_name: str = ""
    published: bool | None = None
    base_model: str = ""
    dataset: str = ""
    model_template: str = ""
    min_bbox_map: float = 0.0
    order_by_map: bool = False
    owner: str = ""


@dataclass(frozen=True)
class UpdateTrainedModel:
    name: str
    paths: tuple[str, ...]  # the update_mask
    display_name: str = ""
    description: str = ""
    etag: str = ""


@dataclass(frozen=True)
class PublishTrainedModel:
    name: str
    min_bbox_map: float = 0.0
    require_better_than_published: bool = False
    force: bool = False
