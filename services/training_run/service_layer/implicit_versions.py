"""The dataset version a run on a plain dataset reference trains on, created or reused implicitly.

A plain ``dataset`` reference ("waste/v3", a directory under the dataset root) names files that may change;
a run must train on a frozen, recorded split. So CreateTrainingRun pins the directory's files (the same
content-addressed snapshot CreateDatasetVersion takes) and trains on a version of the caller's *implicit
dataset* of that directory: one dataset per (owner, directory), display name the reference, found again by
its request_id ``implicit:{reference}``. A version with the same snapshot sha256 and split options in it is
reused, whatever its state (READY at once; PENDING/PREPARING: the run waits for it; INVALID from its content:
the run fails at once with its problems); otherwise a new version is created and prepared by the workers.
The split options are the run's ``train_fraction``/``val_fraction`` with seed 0: the run's seed never moves
the split, so every run of the same files and fractions trains and validates on the same images. The
fine-tune guard (:mod:`split_guard`) checks a READY version at Create; a run that waits carries what the check
needs (``RunSpec.split_guard``) and is checked when the version becomes READY (``DatasetTracking``).

Races: the run's transaction re-saves a version that is not final yet (its optimistic row version), so a
preparation result committed meanwhile makes it retry from a fresh read instead of leaving the run waiting
for an event that already happened (``DatasetTracking`` moves waiting runs in the result's transaction).
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from common.artifacts import ArtifactStore
from common.errors import Aborted
from common.retry import CONFLICTS, Failures
from services.training_run.adapters.dataset_mapping import invalid_reason, run_input
from services.training_run.adapters.repository import ConcurrentUpdate, DuplicateRequest
from services.training_run.domain.datasets import Dataset, DatasetVersion, Snapshot, VersionState
from services.training_run.domain.model import TrainingRun
from services.training_run.service_layer.datasets import split_options
from services.training_run.service_layer.split_guard import SplitOverlap, split_overlap
from services.training_run.service_layer.unit_of_work import UnitOfWork, UnitOfWorkFactory

REQUEST_PREFIX = "implicit:"
FIELD = "training_run.dataset"
Pin = Callable[[str], Snapshot]  # relative reference -> snapshot; blocking


class VersionRace(Exception):
    """A concurrent Create numbered a version of the same dataset first: retry from a fresh read."""


def implicit_split_options(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The version's split options for a run: its fractions, seed 0 (the run's seed never moves the split)."""
    given = {k: float(hyperparameters[k]) for k in ("train_fraction", "val_fraction") if k in hyperparameters}
    return split_options({**given, "seed": 0}, "training_run.hyperparameters")


class ImplicitVersions:
    def __init__(self, uow: UnitOfWorkFactory, pin: Pin, clock: Callable[[], datetime]) -> None:
        self._uow = uow
        self._pin = pin
        self._clock = clock

    async def snapshot(self, reference: str) -> Snapshot:
        """Pin the directory's files (hash, store content-addressed, write the manifest) in a thread."""
        return await asyncio.to_thread(self._pin, reference)

    async def dataset(self, owner: str, reference: str) -> Dataset:
        """The owner's implicit dataset of ``reference``, created on first use."""
        request_id = REQUEST_PREFIX + reference
        conflicts = Failures(CONFLICTS)
        while True:
            async with self._uow() as uow:  # read alone, then insert alone: no read-then-write transaction
                found = await uow.datasets.get_by_request_id(owner, request_id)
            if found is not None:
                return found
            async with self._uow() as uow:
                now = self._clock()
                dataset = Dataset(
                    uuid.uuid4().hex, owner, reference[:200], now,
                    f"Versions of the dataset directory '{reference}' that runs created with a plain dataset "
                    "reference trained on (created by CreateTrainingRun)",
                    request_id, now,
                )  # fmt: skip
                try:
                    await uow.datasets.add(dataset)
                    await uow.commit()
                    return dataset
                except DuplicateRequest:  # a concurrent Create made it first: read it again
                    if not await conflicts.failed():
                        raise Aborted(f"the dataset '{reference}' is changing too often; retry") from None

    async def add_run(self, owner: str, new: TrainingRun, store: ArtifactStore | None) -> TrainingRun:
        """Store ``new`` (on a plain dataset reference) on the version of its files, created or reused: queued
        at once when that version is READY (and the fine-tune guard, if owed, passes: else SplitOverlap),
        FAILED when it is INVALID, else waiting for it."""
        reference = new.spec.dataset
        snapshot = await self.snapshot(reference)
        dataset = await self.dataset(owner, reference)
        conflicts = Failures(CONFLICTS)
        guard = new.spec.split_guard if store is not None else None
        passed: set[str] = set()  # READY versions the guard let through
        while True:
            run = copy.deepcopy(new)
            async with self._uow() as uow:
                try:
                    version = await self.attach(uow, run, dataset.id, snapshot, reference)
                except (ConcurrentUpdate, VersionRace):
                    if await conflicts.failed():
                        continue
                    raise Aborted(f"the dataset '{reference}' is changing too often; retry") from None
                if guard is None or version.state != VersionState.READY or version.name in passed:
                    await uow.runs.add(run)
                    await uow.commit()
                    return run
            # READY, hence final: checked outside the transaction (artifact reads), then attached again.
            assert store is not None
            refused = await split_overlap(store, guard, run_input(version))
            if refused:
                raise SplitOverlap(refused)
            passed.add(version.name)

    async def attach(
        self, uow: UnitOfWork, run: TrainingRun, dataset_id: str, snapshot: Snapshot, reference: str
    ) -> DatasetVersion:
        """In the run's transaction: the version the new ``run`` trains on (reused or created), and the run
        set up for its state. Raises ConcurrentUpdate or VersionRace (the caller retries) on a race."""
        if not await uow.datasets.lock(dataset_id):
            raise VersionRace(f"the dataset of '{reference}' was deleted meanwhile")
        options = implicit_split_options(run.spec.hyperparameters)
        version = None
        for existing in await uow.datasets.versions_with_snapshot(dataset_id, snapshot.sha256):
            if existing.reusable_for(options):
                version = existing
                break
        now = self._clock()
        if version is None:
            dataset = await uow.datasets.get(dataset_id)
            if dataset is None:
                raise VersionRace(f"the dataset of '{reference}' was deleted meanwhile")
            version = DatasetVersion.create(
                id=uuid.uuid4().hex, dataset=dataset, owner=run.owner, snapshot=snapshot, now=now,
                split_options=options,
                description=f"Made by CreateTrainingRun trainingRuns/{run.id} for the dataset '{reference}'",
            )  # fmt: skip
            await uow.datasets.save(dataset)
            try:
                await uow.datasets.add_version(version)
            except DuplicateRequest:
                raise VersionRace(version.name) from None
        elif not version.state.final:
            await uow.datasets.save_version(version)  # fences a concurrent result (module docstring)
        run.wait_for_version(version.name)
        if version.state == VersionState.READY:
            run.on_version_ready(run_input(version).source, now)
        elif version.state == VersionState.INVALID:
            run.on_version_invalid(invalid_reason(version), now)
        return version
