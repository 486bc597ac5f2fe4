"""Datasets and their versions: an immutable, content-addressed snapshot prepared once by a worker.

Pure Python (no grpc, sqlalchemy, nats). A :class:`DatasetVersion` moves PENDING -> PREPARING -> READY |
INVALID only through its transition methods; each records a :class:`VersionStateChanged` event, and creation
a :class:`PreparationRequested`, which the unit of work writes to the outbox in the same transaction. What
the worker computed (profile, split, problems) is kept as opaque serialized bytes: the domain decides only
the state it leads to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from common.errors import FailedPrecondition
from common.failures import Failure


class VersionState(IntEnum):
    """Values equal ``raven.v1.DatasetVersionState``."""

    UNSPECIFIED = 0
    PENDING = 1
    PREPARING = 2
    READY = 3
    INVALID = 4

    @property
    def final(self) -> bool:
        return self in (VersionState.READY, VersionState.INVALID)


ALLOWED: frozenset[tuple[VersionState, VersionState]] = frozenset({
    (VersionState.UNSPECIFIED, VersionState.PENDING),  # created
    (VersionState.PENDING, VersionState.PREPARING),    # a worker started
    (VersionState.PENDING, VersionState.READY),        # the result came before (or without) the start event
    (VersionState.PENDING, VersionState.INVALID),
    (VersionState.PREPARING, VersionState.READY),
    (VersionState.PREPARING, VersionState.INVALID),
})  # fmt: skip


class InvalidVersionTransition(FailedPrecondition):
    """The version's state does not allow the change."""


class DatasetInUse(FailedPrecondition):
    """A run that is not final uses the version."""


class VersionNotReady(FailedPrecondition):
    """A run asked for a version that is not READY."""


@dataclass(frozen=True)
class RunInput:
    """What a run takes from a READY version: its classes (category order) and ``source``, everything the
    worker needs to rebuild the frozen split (``RunSpec.dataset_source``)."""

    name: str
    class_names: tuple[str, ...]
    source: dict[str, Any]
    largest_image_side: int = 0  # px, from the profile (bounds a run's tiling.tile_size); 0 = unknown
    train_images: int = 0  # images of the train split, from the profile (small-dataset defaults); 0 = unknown


@dataclass(frozen=True)
class VersionStateChanged:
    version_id: str
    dataset_id: str
    number: int
    from_state: VersionState
    to_state: VersionState
    reason: str
    time: datetime


@dataclass(frozen=True)
class PreparationRequested:
    version_id: str
    dataset_id: str
    number: int
    attempt: int


DatasetEvent = VersionStateChanged | PreparationRequested


@dataclass(eq=False)
class Dataset:
    id: str
    owner: str
    display_name: str
    create_time: datetime
    description: str = ""
    request_id: str = ""
    update_time: datetime | None = None
    next_version: int = 1  # number the next version gets; never reused, even after a delete
    version: int = 0  # optimistic concurrency (row version)

    @property
    def name(self) -> str:
        return f"datasets/{self.id}"

    def allocate_version_number(self, now: datetime) -> int:
        number = self.next_version
        self.next_version += 1
        self.update_time = now
        return number


@dataclass(frozen=True)
class Snapshot:
    """What the server pinned at creation: the files and their identity."""

    sha256: str  # over the sorted per-file manifest
    manifest_key: str  # artifact key of the JSON manifest [{path, size, sha256}]
    manifest_sha256: str
    manifest_size: int
    file_count: int
    size_bytes: int
    annotation_files: dict[str, str]  # layout: {"all": "annotations.json"} or {"train": ..., "val": ...}


@dataclass(frozen=True)
class PreparationResult:
    """The worker's result: how many problems it found, and everything else as the serialized message the
    adapters decode (profile, split, problems, near-duplicate groups)."""

    problem_count: int
    payload: bytes = b""


@dataclass(eq=False)
class DatasetVersion:
    id: str
    dataset_id: str
    number: int
    owner: str
    snapshot: Snapshot
    split_options: dict[str, float | int]  # defaults filled in: train_fraction, val_fraction, seed
    create_time: datetime
    description: str = ""
    source_uri: str = ""
    upload: dict[str, str | int] | None = None  # {"size_bytes", "sha256", "format"}
    request_id: str = ""
    state: VersionState = VersionState.UNSPECIFIED
    attempt: int = 1
    progress: bytes = b""
    progress_seq: int = 0
    result: PreparationResult | None = None
    failure: Failure | None = None
    update_time: datetime | None = None
    ready_time: datetime | None = None
    transitions: list[tuple[int, int, str]] = field(default_factory=list)  # (from, to, reason)
    version: int = 0
    events: list[DatasetEvent] = field(default_factory=list, repr=False)

    @property
    def name(self) -> str:
        return f"datasets/{self.dataset_id}/versions/{self.number}"

    @classmethod
    def create(
        cls, *, id: str, dataset: Dataset, owner: str, snapshot: Snapshot, now: datetime,
        split_options: dict[str, float | int], description: str = "", source_uri: str = "",
        upload: dict[str, str | int] | None = None, request_id: str = "",
    ) -> DatasetVersion:  # fmt: skip
        version = cls(
            id=id, dataset_id=dataset.id, number=dataset.allocate_version_number(now), owner=owner,
            snapshot=snapshot, split_options=split_options, create_time=now, description=description,
            source_uri=source_uri, upload=upload, request_id=request_id, update_time=now,
        )  # fmt: skip
        version._move(VersionState.PENDING, now, "created")
        version.events.append(PreparationRequested(version.id, version.dataset_id, version.number, 1))
        return version

    def reusable_for(self, split_options: dict[str, float | int]) -> bool:
        """Content addressing: the same snapshot with the same split options is this version, unless it
        failed for a reason other than its content (then a new version may succeed)."""
        return self.split_options == split_options and self.failure is None

    # ---- what the worker reports ------------------------------------------------------------------------
    def start(self, now: datetime) -> bool:
        if self.state != VersionState.PENDING:
            return False  # a redelivered start, or one after the result: nothing to do
        self._move(VersionState.PREPARING, now, "a worker is preparing it")
        return True

    def report_progress(self, progress: bytes, seq: int, now: datetime) -> bool:
        if self.state.final or seq <= self.progress_seq:
            return False
        self.progress, self.progress_seq, self.update_time = progress, seq, now
        return True

    def complete(self, result: PreparationResult, now: datetime) -> bool:
        if self.state.final:
            return False  # redelivered: the first result stands
        self.result = result
        if result.problem_count:
            self._move(VersionState.INVALID, now, f"{result.problem_count} problem(s) found in the dataset")
        else:
            self._move(VersionState.READY, now, "prepared")
        return True

    def fail(self, failure: Failure, now: datetime) -> bool:
        if self.state.final:
            return False
        self.failure = failure
        self._move(VersionState.INVALID, now, failure.message)
        return True

    def ensure_ready_for_runs(self) -> None:
        """Runs train only on a READY version: its split and files are final."""
        if self.state == VersionState.READY:
            return
        if self.state == VersionState.INVALID:
            count = self.result.problem_count if self.result else 0
            why = self.failure.message if self.failure else f"{count} problem(s) found"
            raise VersionNotReady(
                f"{self.name} is INVALID ({why}); it can't be trained on: fix the dataset and create a new "
                "version (GetDatasetVersion lists the problems)"
            )
        raise VersionNotReady(
            f"{self.name} is {self.state.name}, not READY yet: wait until its preparation ends "
            "(WatchDatasetVersion), then create the run again"
        )

    def ensure_deletable(self, runs_using: list[str]) -> None:
        if runs_using:
            more = f" and {len(runs_using) - 1} more" if len(runs_using) > 1 else ""
            raise DatasetInUse(
                f"{self.name} is used by {runs_using[0]}{more}, which is not final yet: wait for it to "
                "finish or cancel it, then delete again"
            )

    def _move(self, to: VersionState, now: datetime, reason: str) -> None:
        if (self.state, to) not in ALLOWED:
            raise InvalidVersionTransition(f"dataset version is {self.state.name}; it can't become {to.name}")
        before = self.state
        self.state, self.update_time = to, now
        if to.final:
            self.ready_time = now
        self.transitions.append((int(before), int(to), reason))
        self.events.append(
            VersionStateChanged(self.id, self.dataset_id, self.number, before, to, reason, now)
        )
