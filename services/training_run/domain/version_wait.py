"""A run on a plain dataset reference waits for the dataset version made for it.

CreateTrainingRun with a plain ``dataset`` trains on a version of that directory, created (or reused by its
snapshot sha256) in the caller's implicit dataset of the directory. When that version is not READY yet the run
is created PENDING *without* a job: it records the version's name but not yet its ``dataset_source`` (the
frozen split the worker needs), and no worker may claim it. When the version becomes READY the run takes its
source and its first job is requested (the outbox publishes it in the same transaction), unless the fine-tune
guard refuses the version's split (then FAILED, INVALID_CONFIG); when it becomes INVALID the run ends FAILED
(INVALID_DATASET) with the version's problems.

Pure Python: a mixin of :class:`~services.training_run.domain.model.TrainingRun`, apart so that the
aggregate's module stays small.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.training_run.domain.events import DomainEvent, JobRequested
from services.training_run.domain.lifecycle import Failure, FailureKind, InvalidTransition, RunState

if TYPE_CHECKING:
    from services.training_run.domain.model import RunSpec


class VersionNotPrepared(InvalidTransition):
    """A worker tried to claim a run whose dataset version is still being prepared."""


class WaitsForDatasetVersion:
    if TYPE_CHECKING:
        id: str
        state: RunState
        spec: RunSpec
        attempt: int
        update_time: datetime | None
        events: list[DomainEvent]

        def _fail(self, now: datetime, failure: Failure) -> None: ...

    @property
    def awaiting_version(self) -> bool:
        """PENDING on a dataset version whose split it does not have yet (no job was requested)."""
        return (
            self.state == RunState.PENDING
            and bool(self.spec.dataset_version)
            and not self.spec.dataset_source
        )

    def wait_for_version(self, version_name: str) -> None:
        """Just created on a plain dataset reference whose version ``version_name`` is not READY yet: record
        the version, and withdraw the job that creation requested until the version is READY."""
        if self.state != RunState.PENDING or self.attempt != 1 or self.spec.dataset_source:
            raise InvalidTransition(
                f"run is {self.state.name}; only a new run can wait for its dataset version"
            )
        self.spec = replace(self.spec, dataset_version=version_name, dataset_source={})
        self.events[:] = [e for e in self.events if not isinstance(e, JobRequested)]

    def on_version_ready(self, source: dict[str, Any], now: datetime) -> bool:
        """The version is READY: train on its frozen split (``source``); the first job is requested now."""
        if not self.awaiting_version:
            return False  # cancelled meanwhile, or already applied
        self.spec = replace(self.spec, dataset_source=dict(source), split_guard=None)  # the guard passed
        self.update_time = now
        self.events.append(JobRequested(self.id, self.attempt))
        return True

    def on_version_invalid(self, message: str, now: datetime) -> bool:
        """The version ended INVALID: the run ends FAILED (INVALID_DATASET) saying why."""
        if not self.awaiting_version:
            return False
        self._fail(now, Failure(FailureKind.INVALID_DATASET, message))
        return True

    def on_split_overlap(self, message: str, now: datetime) -> bool:
        """The version is READY but the fine-tune guard refuses it (the base model trained on images of its
        val or test split, and the request did not allow it): the run ends FAILED (INVALID_CONFIG) saying
        so, as Create would have refused it had the version been READY then."""
        if not self.awaiting_version:
            return False
        self._fail(now, Failure(FailureKind.INVALID_CONFIG, message))
        return True

    def ensure_claimable(self) -> None:
        if self.awaiting_version:
            raise VersionNotPrepared(
                f"run waits for its dataset version {self.spec.dataset_version} to be prepared; drop the job"
            )
