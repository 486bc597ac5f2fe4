"""What the workers report about a version's preparation (started, progress, result, failure), applied to
the stored version: each event once, in one transaction with the state change it causes, including the
change of the runs that waited for the version (``implicit_versions``; on READY, the fine-tune guard a waiting
run still owes, ``split_guard``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from common.artifacts import ArtifactStore
from common.errors import Aborted
from common.failures import Failure, FailureKind
from common.retry import CONFLICTS, Failures
from services.training_run.adapters.dataset_mapping import invalid_reason, run_input
from services.training_run.adapters.repository import ConcurrentUpdate
from services.training_run.domain.datasets import DatasetVersion, PreparationResult, VersionState
from services.training_run.domain.model import TrainingRun
from services.training_run.service_layer.datasets import parse_version_name
from services.training_run.service_layer.split_guard import split_overlap
from services.training_run.service_layer.unit_of_work import UnitOfWork, UnitOfWorkFactory


@dataclass(frozen=True)
class ReportedPreparation:
    dataset_version: str  # "datasets/{id}/versions/{n}"
    seq: int  # events-stream sequence
    kind: str  # started | progress | completed | failed
    progress: bytes = b""
    result: PreparationResult | None = None
    failure: Failure | None = None


class DatasetTracking:
    def __init__(
        self, uow: UnitOfWorkFactory, clock: Callable[[], datetime], store: ArtifactStore | None = None
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._store = store  # split manifests, for the fine-tune guard of waiting runs (None: no guard)

    async def apply(self, report: ReportedPreparation) -> bool:
        """Apply one reported event; False when it changed nothing (redelivered, late, or the version is
        gone)."""
        try:
            dataset_id, number = parse_version_name(report.dataset_version)
        except Exception:
            return False  # not ours to interpret: nothing to change
        conflicts = Failures(CONFLICTS)
        while True:
            async with self._uow() as uow:
                version = await uow.datasets.get_version(dataset_id, number)
                if version is None or not self._change(version, report):
                    return False
                waiting = await uow.runs.awaiting_version(version.name) if version.state.final else []
                refusals = await self._guard(version, waiting)  # artifact reads, before any write
                try:
                    await uow.datasets.save_version(version)
                    await self._move_waiting_runs(uow, version, waiting, refusals)
                except ConcurrentUpdate:
                    if await conflicts.failed():
                        continue
                    raise Aborted(f"{report.dataset_version} is changing too often") from None
                await uow.commit()
                return True

    async def fail_dead_lettered(self, version_name: str, problem: str) -> bool:
        """The version's preparation job was dead-lettered (its workers gave up on it): INVALID with
        ``problem``, and the runs waiting for it FAILED, unless a result came first."""
        failure = Failure(FailureKind.INTERNAL_ERROR, problem)
        return await self.apply(ReportedPreparation(version_name, 0, "failed", failure=failure))

    async def _guard(self, version: DatasetVersion, waiting: list[TrainingRun]) -> dict[str, str]:
        """The fine-tune guard of each waiting run that still owes it, on the READY ``version``: run id ->
        refusal, for those it refuses."""
        guarded = [r for r in waiting if r.spec.split_guard is not None]
        if version.state != VersionState.READY or not guarded or self._store is None:
            return {}
        split = run_input(version)
        refusals = {}
        for run in guarded:
            assert run.spec.split_guard is not None
            refused = await split_overlap(self._store, run.spec.split_guard, split)
            if refused:
                refusals[run.id] = refused
        return refusals

    async def _move_waiting_runs(
        self, uow: UnitOfWork, version: DatasetVersion, waiting: list[TrainingRun], refusals: dict[str, str]
    ) -> None:
        """Runs created on a plain dataset reference wait for their (implicit) version: READY queues each
        one's first job (or fails it with the fine-tune guard's refusal), INVALID fails it with the version's
        problems; in the transaction of the result."""
        now = self._clock()
        ready = version.state == VersionState.READY
        source = run_input(version).source if ready else {}
        reason = "" if ready else invalid_reason(version)
        for run in waiting:
            if run.id in refusals:
                changed = run.on_split_overlap(refusals[run.id], now)
            elif ready:
                changed = run.on_version_ready(source, now)
            else:
                changed = run.on_version_invalid(reason, now)
            if changed:
                await uow.runs.save(run)

    def _change(self, version: DatasetVersion, report: ReportedPreparation) -> bool:
        now = self._clock()
        if report.kind == "started":
            return version.start(now)
        if report.kind == "progress":
            return version.report_progress(report.progress, report.seq, now)
        if report.kind == "completed" and report.result is not None:
            return version.complete(report.result, now)
        if report.kind == "failed" and report.failure is not None:
            return version.fail(report.failure, now)
        return False
