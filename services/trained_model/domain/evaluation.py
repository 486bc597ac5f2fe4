"""The Evaluation entity: one model scored on one split of one dataset version, and its state machine.

Plain Python only. ``metrics`` is ``raven.v1.DetectionMetrics`` as a JSON dict (proto field names), stored
and served as it came from the worker (or the training run); ``inference`` likewise
``raven.v1.EvaluationInference`` (how it predicted: sliced or on full images; empty = not recorded). The rules
here only need the state, the attempt that may still report, and the model/version/split identity.

States (AIP-216 style)::

    PENDING ──start──▶ RUNNING ──succeed──▶ SUCCEEDED
       │                 ├────fail────▶ FAILED
       └──cancel─▶ CANCELLED ◀─cancel─┘

A report of an older attempt than the one recorded is stale (a worker that lost its job message to another);
any report for a final evaluation is dropped: a cancel that won stays won.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from common.errors import FailedPrecondition, FieldViolation, InvalidArgument
from services.trained_model.domain.model import Artifact

NAME_PREFIX = "evaluations/"
SPLITS = ("test", "val", "train")
DEFAULT_SPLIT = "test"
VERSION_NAME = re.compile(r"^datasets/([A-Za-z0-9_-]{1,64})/versions/([1-9][0-9]{0,9})$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class EvaluationState(IntEnum):
    """Mirrors ``raven.v1.EvaluationState`` by number."""

    PENDING = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5

    @property
    def final(self) -> bool:
        return self in (EvaluationState.SUCCEEDED, EvaluationState.FAILED, EvaluationState.CANCELLED)


class InvalidEvaluationTransition(FailedPrecondition):
    """The evaluation's state does not allow this (cancel of a final one)."""


@dataclass
class Evaluation:
    id: str
    model_id: str
    dataset_version: str
    split: str
    owner: str
    create_time: datetime
    update_time: datetime
    state: EvaluationState = EvaluationState.PENDING
    split_sha256: str = ""
    dataset: str = ""
    training_run_id: str = ""
    request_id: str = ""
    attempt: int = 0
    worker_id: str = ""
    progress: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    inference: dict[str, Any] = field(default_factory=dict)
    failure_kind: str = ""
    failure_message: str = ""
    cancel_reason: str = ""
    end_time: datetime | None = None
    job_published: bool = False
    revision: int = 1

    @property
    def name(self) -> str:
        return f"{NAME_PREFIX}{self.id}"

    @property
    def bbox_map(self) -> float | None:
        value = self.metrics.get("bbox_map")
        return float(value) if isinstance(value, int | float) else None

    def _touch(self, now: datetime) -> None:
        self.update_time = now
        self.revision += 1

    def _accepts(self, attempt: int) -> bool:
        """A report from ``attempt`` may change this evaluation (not final, not older than the recorded)."""
        return not self.state.final and attempt >= self.attempt

    def start(self, attempt: int, worker_id: str, now: datetime) -> bool:
        if not self._accepts(attempt):
            return False
        self.state, self.attempt, self.worker_id = EvaluationState.RUNNING, attempt, worker_id
        self._touch(now)
        return True

    def report_progress(self, attempt: int, progress: dict[str, Any], now: datetime) -> bool:
        if not self._accepts(attempt):
            return False
        if self.state is EvaluationState.PENDING:
            self.state = EvaluationState.RUNNING
        self.attempt, self.progress = attempt, dict(progress)
        self._touch(now)
        return True

    def succeed(
        self,
        attempt: int,
        metrics: dict[str, Any],
        artifacts: list[Artifact],
        now: datetime,
        inference: dict[str, Any] | None = None,
    ) -> bool:
        if not self._accepts(attempt):
            return False
        self.state, self.attempt = EvaluationState.SUCCEEDED, attempt
        self.metrics, self.artifacts = dict(metrics), list(artifacts)
        self.inference = dict(inference or {})
        self.end_time = now
        self._touch(now)
        return True

    def fail(self, attempt: int, kind: str, message: str, now: datetime) -> bool:
        if not self._accepts(attempt):
            return False
        self.state, self.attempt = EvaluationState.FAILED, attempt
        self.failure_kind, self.failure_message = kind, message
        self.end_time = now
        self._touch(now)
        return True

    def cancel(self, reason: str, now: datetime) -> None:
        if self.state.final:
            raise InvalidEvaluationTransition(
                f"{self.name} is already {self.state.name}; only a PENDING or RUNNING evaluation can be "
                "cancelled"
            )
        self.state, self.cancel_reason, self.end_time = EvaluationState.CANCELLED, reason, now
        self._touch(now)


def parse_evaluation_name(name: str, field_name: str = "name") -> str:
    """The id of ``evaluations/{id}``; INVALID_ARGUMENT otherwise."""
    ident = name.removeprefix(NAME_PREFIX) if isinstance(name, str) else ""
    if not name.startswith(NAME_PREFIX) or not _ID.match(ident):
        description = "must be 'evaluations/{id}'"
        raise InvalidArgument(f"{field_name} {description}", [FieldViolation(field_name, description)])
    return ident


def check_split(split: str, field_name: str = "split") -> str:
    """The split, ``test`` when empty; INVALID_ARGUMENT for anything but test/val/train."""
    value = split or DEFAULT_SPLIT
    if value not in SPLITS:
        description = f"must be one of {', '.join(SPLITS)}"
        raise InvalidArgument(f"{field_name} {description}", [FieldViolation(field_name, description)])
    return value


def check_version_name(name: str, field_name: str = "dataset_version") -> str:
    if not VERSION_NAME.match(name or ""):
        description = "must be 'datasets/{id}/versions/{n}'"
        raise InvalidArgument(f"{field_name} {description}", [FieldViolation(field_name, description)])
    return name


def class_mismatch(model_classes: list[str], version_classes: list[str]) -> str:
    """Why a model cannot be scored on a version's annotations ('' when the classes match as sets).

    The worker maps the version's categories onto the model's by name, so the order may differ; a class
    the model does not know (or one it knows that the version lacks) makes the numbers meaningless."""
    only_version = [c for c in version_classes if c not in set(model_classes)]
    only_model = [c for c in model_classes if c not in set(version_classes)]
    if not only_version and not only_model:
        return ""
    parts = []
    if only_version:
        parts.append(f"the version has classes the model lacks: {', '.join(map(repr, only_version[:20]))}")
    if only_model:
        parts.append(f"the model has classes the version lacks: {', '.join(map(repr, only_model[:20]))}")
    return "; ".join(parts)


def from_training(
    evaluation_id: str,
    *,
    model_id: str,
    owner: str,
    dataset: str,
    split_sha256: str,
    training_run_id: str,
    metrics: dict[str, Any],
    artifacts: list[Artifact],
    now: datetime,
    inference: dict[str, Any] | None = None,
) -> Evaluation:
    """The test split evaluation a successful training run made of its best checkpoint, as a record."""
    is_version = bool(VERSION_NAME.match(dataset))
    return Evaluation(
        id=evaluation_id,
        model_id=model_id,
        dataset_version=dataset if is_version else "",
        dataset="" if is_version else dataset,
        split=DEFAULT_SPLIT,
        owner=owner,
        create_time=now,
        update_time=now,
        state=EvaluationState.SUCCEEDED,
        split_sha256=split_sha256,
        training_run_id=training_run_id,
        metrics=dict(metrics),
        artifacts=list(artifacts),
        inference=dict(inference or {}),
        end_time=now,
        job_published=True,
        attempt=1,
    )
