"""The TrainedModel entity and its rules: versioning, publication gates, edits, deletion, lineage.

Plain Python only (no grpc, sqlalchemy, nats or mmdet). Structured payloads that the registry stores but never
interprets (evaluation history, framework versions) stay plain JSON dicts; what the rules need (the validation
bbox mAP, the checkpoint) are typed fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from common.errors import Aborted, FailedPrecondition, FieldViolation, InvalidArgument, require

MAX_DISPLAY_NAME = 200
MAX_DESCRIPTION = 4000
MAX_CLASSES = 1000
MAX_CLASS_NAME = 200
NAME_PREFIX = "trainedModels/"
RUN_PREFIX = "trainingRuns/"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ArtifactKind(StrEnum):
    """Mirrors ``raven.v1.ArtifactKind`` by name."""

    CHECKPOINT = "CHECKPOINT"
    CONFIG = "CONFIG"
    METRICS = "METRICS"
    LOG = "LOG"
    CURVES = "CURVES"
    SPLIT_MANIFEST = "SPLIT_MANIFEST"
    DATASET_SNAPSHOT = "DATASET_SNAPSHOT"
    PREDICTIONS = "PREDICTIONS"
    EVALUATION_ANALYSIS = "EVALUATION_ANALYSIS"
    CONFUSION_MATRIX = "CONFUSION_MATRIX"
    PR_CURVES = "PR_CURVES"
    PREDICTION_GALLERY = "PREDICTION_GALLERY"


class PublicationRefused(FailedPrecondition):
    """A publication gate refused the model."""


class ModelInUse(FailedPrecondition):
    """The model cannot be deleted while something depends on it."""


@dataclass(frozen=True)
class Artifact:
    kind: ArtifactKind
    uri: str
    size_bytes: int
    sha256: str

    @property
    def filename(self) -> str:
        return self.uri.rsplit("/", 1)[-1]


@dataclass
class TrainedModel:
    id: str
    display_name: str
    version: int
    owner: str
    checkpoint: Artifact
    create_time: datetime
    update_time: datetime
    description: str = ""
    training_run_id: str | None = None
    base_model_id: str | None = None
    dataset: str = ""
    dataset_snapshot_sha256: str = ""
    split_sha256: str = ""  # the dataset version's split; empty for a plain dataset reference
    # The plain dataset reference its run was created with ("waste/v3"; ``dataset`` is then its implicit
    # version); empty for a run on a dataset version, an import, or a model stored before it was recorded.
    dataset_reference: str = ""
    class_names: list[str] = field(default_factory=list)
    model_template: str = ""
    config_text: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    config_sha256: str = ""
    artifacts: list[Artifact] = field(default_factory=list)
    evaluation: dict[str, Any] = field(default_factory=dict)  # proto-JSON form of raven.v1.EvaluationResults
    bbox_map: float | None = None  # validation COCO bbox mAP; None when never evaluated (imported roots)
    training_seconds: float = 0.0
    parameter_count: int = 0
    framework_versions: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    epochs: int = 0
    learning_rate: float = 0.0
    average_loss: float = 0.0
    published: bool = False
    published_by: str = ""
    publish_time: datetime | None = None
    revision: int = 1
    import_request_id: str | None = None
    aliases: list[str] = field(default_factory=list)  # kept in their own table (unique per family)
    publish_decision: dict[str, Any] = field(default_factory=dict)  # champion_gate.PublishDecision.to_dict()

    @property
    def name(self) -> str:
        return model_name(self.id)

    @property
    def etag(self) -> str:
        return f'"{self.revision}"'

    def artifact(self, kind: ArtifactKind, filename: str = "") -> Artifact | None:
        """The artifact of ``kind`` (the first one, or the one named ``filename``: a gallery has several)."""
        if kind is ArtifactKind.CHECKPOINT:
            return self.checkpoint if not filename or filename == self.checkpoint.filename else None
        return next(
            (a for a in self.artifacts if a.kind is kind and (not filename or a.filename == filename)), None
        )

    def artifact_keys(self) -> list[str]:
        return sorted({self.checkpoint.uri, *(a.uri for a in self.artifacts)})

    # ------------------------------------------------------------------------------------------- transitions

    def check_etag(self, etag: str) -> None:
        if etag and etag != self.etag:
            raise Aborted(
                f"{self.name} changed since it was read (etag {etag} is stale, current {self.etag})"
            )

    def edit(self, *, display_name: str | None, description: str | None, now: datetime) -> bool:
        """Apply an edit; True when the display name changed (the caller then assigns a new version)."""
        violations: list[FieldViolation] = []
        if display_name is not None:
            violations += validate_display_name(display_name, "trained_model.display_name")
        if description is not None:
            violations += validate_description(description, "trained_model.description")
        require(violations)
        renamed = display_name is not None and display_name != self.display_name
        if display_name is not None:
            self.display_name = display_name
        if description is not None:
            self.description = description
        self._touch(now)
        return renamed

    def publish(self, gate: PublicationGate, *, by: str, now: datetime) -> None:
        """Publish unless a requested gate refuses (``gate.force`` skips gates; the caller authorizes it)."""
        if self.published:
            return
        if not gate.force:
            gate.check(self)
        self.published = True
        self.published_by = by
        self.publish_time = now
        self._touch(now)

    def unpublish(self, *, now: datetime) -> None:
        if not self.published:
            return
        self.published = False
        self.published_by = ""
        self.publish_time = None
        self._touch(now)

    def ensure_deletable(self, *, descendants: int, active_runs: bool) -> None:
        if descendants:
            raise ModelInUse(
                f"{self.name} is the base model of {descendants} other model(s); delete those first"
            )
        if active_runs:
            raise ModelInUse(
                f"{self.name} is the base model of a pending or running training run; cancel or await it"
            )

    def _touch(self, now: datetime) -> None:
        self.update_time = now
        self.revision += 1


@dataclass(frozen=True)
class PublicationGate:
    """Optional publication gates of one Publish request.

    ``best_published_map`` is the best validation mAP among the other published models of the same name
    (None when there is none), looked up by the caller only when ``require_better`` is set.
    """

    min_bbox_map: float = 0.0
    require_better: bool = False
    best_published_map: float | None = None
    force: bool = False

    def check(self, model: TrainedModel) -> None:
        score = model.bbox_map
        if self.min_bbox_map > 0:
            if score is None:
                raise PublicationRefused(
                    f"{model.name} has no evaluation, so it cannot pass min_bbox_map {self.min_bbox_map}"
                )
            if score < self.min_bbox_map:
                raise PublicationRefused(
                    f"{model.name} has validation bbox mAP {score:.4f}, below {self.min_bbox_map:.4f}"
                )
        if self.require_better and self.best_published_map is not None:
            if score is None or score < self.best_published_map:
                shown = "no evaluation" if score is None else f"validation bbox mAP {score:.4f}"
                raise PublicationRefused(
                    f"{model.name} has {shown}, worse than the published {model.display_name!r} model "
                    f"({self.best_published_map:.4f}); pass force with the superadmin claim to publish anyway"
                )


def validate_gate_threshold(value: float) -> None:
    if not (0.0 <= value <= 1.0):
        raise InvalidArgument(
            "min_bbox_map must be within [0, 1]",
            [FieldViolation("min_bbox_map", f"{value} is outside [0, 1]")],
        )


# ----------------------------------------------------------------------------------------------------- names


def model_name(model_id: str) -> str:
    return f"{NAME_PREFIX}{model_id}"


def parse_model_name(name: str, field_name: str = "name") -> str:
    """``trainedModels/{id}`` → id, or InvalidArgument naming the field."""
    model_id = name[len(NAME_PREFIX) :] if name.startswith(NAME_PREFIX) else ""
    if not _ID.match(model_id):
        raise InvalidArgument(
            f"{field_name} must look like 'trainedModels/{{id}}'",
            [FieldViolation(field_name, f"{name!r} is not a trained model name")],
        )
    return model_id


def run_name(run_id: str | None) -> str:
    return f"{RUN_PREFIX}{run_id}" if run_id else ""


def validate_display_name(value: str, field_name: str = "display_name") -> list[FieldViolation]:
    if not value.strip():
        return [FieldViolation(field_name, "must not be empty")]
    if len(value) > MAX_DISPLAY_NAME:
        return [FieldViolation(field_name, f"at most {MAX_DISPLAY_NAME} characters")]
    if _CONTROL.search(value):
        return [FieldViolation(field_name, "must not contain control characters")]
    return []


def validate_description(value: str, field_name: str = "description") -> list[FieldViolation]:
    if len(value) > MAX_DESCRIPTION:
        return [FieldViolation(field_name, f"at most {MAX_DESCRIPTION} characters")]
    return []


def validate_class_names(names: list[str], field_name: str = "class_names") -> list[FieldViolation]:
    if not names:
        return [FieldViolation(field_name, "at least one class name is required")]
    if len(names) > MAX_CLASSES:
        return [FieldViolation(field_name, f"at most {MAX_CLASSES} classes")]
    violations = []
    for index, name in enumerate(names):
        if not name.strip() or len(name) > MAX_CLASS_NAME or _CONTROL.search(name):
            violations.append(
                FieldViolation(f"{field_name}[{index}]", f"1..{MAX_CLASS_NAME} printable characters")
            )
    if len(set(names)) != len(names):
        violations.append(FieldViolation(field_name, "class names must be unique"))
    return violations


def next_version(current_max: int | None) -> int:
    return (current_max or 0) + 1
