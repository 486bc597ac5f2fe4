"""SQL repository of datasets and dataset versions (Core statements over the ORM tables, optimistic rows)."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import mapped_table
from common.failures import Failure, FailureKind
from services.training_run.adapters.dataset_orm import DatasetRow, DatasetVersionRow
from services.training_run.adapters.orm import TrainingRunRow
from services.training_run.adapters.repository import ConcurrentUpdate, DuplicateRequest
from services.training_run.domain.datasets import (
    Dataset,
    DatasetVersion,
    PreparationResult,
    Snapshot,
    VersionState,
)
from services.training_run.domain.lifecycle import TERMINAL_STATES

DATASETS = mapped_table(DatasetRow)
VERSIONS = mapped_table(DatasetVersionRow)
RUNS = mapped_table(TrainingRunRow)
Keyset = tuple[datetime, str] | None


def _after(table: Any, after: Keyset) -> builtins.list[Any]:
    if after is None:
        return []
    time, row_id = after
    return [or_(table.c.create_time < time, and_(table.c.create_time == time, table.c.id < row_id))]


@dataclass
class DatasetRepository:
    session: AsyncSession
    seen: builtins.list[DatasetVersion] = field(default_factory=list)

    # ---- datasets ------------------------------------------------------------------------------------------
    async def get(self, dataset_id: str) -> Dataset | None:
        row = (await self.session.execute(select(DATASETS).where(DATASETS.c.id == dataset_id))).first()
        return _dataset(row._mapping) if row else None

    async def get_by_request_id(self, owner: str, request_id: str) -> Dataset | None:
        statement = select(DATASETS).where(DATASETS.c.owner == owner, DATASETS.c.request_id == request_id)
        row = (await self.session.execute(statement)).first()
        return _dataset(row._mapping) if row else None

    async def add(self, dataset: Dataset) -> None:
        try:
            async with self.session.begin_nested():
                await self.session.execute(insert(DATASETS).values(**_dataset_row(dataset), version=1))
            dataset.version = 1
        except IntegrityError as exc:
            raise DuplicateRequest(dataset.request_id) from exc

    async def save(self, dataset: Dataset) -> None:
        result = await self.session.execute(
            update(DATASETS)
            .where(DATASETS.c.id == dataset.id, DATASETS.c.version == dataset.version)
            .values(**_dataset_row(dataset), version=dataset.version + 1)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentUpdate(dataset.id)
        dataset.version += 1

    async def lock(self, dataset_id: str) -> bool:
        """Take the dataset's row for this transaction before reading its versions (a no-op write): PostgreSQL
        serializes concurrent writers of the dataset on its row lock, SQLite on its write lock taken before
        any read (a read-then-write transaction fails with "database is locked" when another writer commits
        in between). False when the dataset is gone."""
        result = await self.session.execute(
            update(DATASETS).where(DATASETS.c.id == dataset_id).values(version=DATASETS.c.version)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def list(self, owner: str | None, after: Keyset, limit: int) -> builtins.list[Dataset]:
        clauses = ([DATASETS.c.owner == owner] if owner is not None else []) + _after(DATASETS, after)
        statement = (
            select(DATASETS)
            .where(*clauses)
            .order_by(DATASETS.c.create_time.desc(), DATASETS.c.id.desc())
            .limit(limit)
        )
        return [_dataset(r) for r in (await self.session.execute(statement)).mappings()]

    async def count(self, owner: str | None) -> int:
        clauses = [DATASETS.c.owner == owner] if owner is not None else []
        statement = select(func.count()).select_from(DATASETS).where(*clauses)
        return int((await self.session.execute(statement)).scalar_one())

    async def version_summary(self, dataset_id: str) -> tuple[int, int]:
        """(number of versions, newest version number or 0)."""
        statement = select(func.count(), func.max(VERSIONS.c.number)).where(
            VERSIONS.c.dataset_id == dataset_id
        )
        count, newest = (await self.session.execute(statement)).one()
        return int(count), int(newest or 0)

    async def delete(self, dataset_id: str) -> None:
        await self.session.execute(delete(VERSIONS).where(VERSIONS.c.dataset_id == dataset_id))
        await self.session.execute(delete(DATASETS).where(DATASETS.c.id == dataset_id))

    # ---- versions ------------------------------------------------------------------------------------------
    async def get_version(self, dataset_id: str, number: int) -> DatasetVersion | None:
        statement = select(VERSIONS).where(VERSIONS.c.dataset_id == dataset_id, VERSIONS.c.number == number)
        row = (await self.session.execute(statement)).first()
        return _version(row._mapping) if row else None

    async def version_by_request_id(self, dataset_id: str, request_id: str) -> DatasetVersion | None:
        statement = select(VERSIONS).where(
            VERSIONS.c.dataset_id == dataset_id, VERSIONS.c.request_id == request_id
        )
        row = (await self.session.execute(statement)).first()
        return _version(row._mapping) if row else None

    async def versions_with_snapshot(self, dataset_id: str, sha256: str) -> builtins.list[DatasetVersion]:
        statement = (
            select(VERSIONS)
            .where(VERSIONS.c.dataset_id == dataset_id, VERSIONS.c.snapshot_sha256 == sha256)
            .order_by(VERSIONS.c.number)
        )
        return [_version(r) for r in (await self.session.execute(statement)).mappings()]

    async def add_version(self, version: DatasetVersion) -> None:
        version.version = 1
        try:
            async with self.session.begin_nested():
                await self.session.execute(insert(VERSIONS).values(**_version_row(version)))
        except IntegrityError as exc:
            raise DuplicateRequest(version.request_id) from exc
        self.seen.append(version)

    async def save_version(self, version: DatasetVersion) -> None:
        values = _version_row(version)
        values["version"] = version.version + 1
        result = await self.session.execute(
            update(VERSIONS).where(VERSIONS.c.id == version.id, VERSIONS.c.version == version.version)
            .values(**values)
        )  # fmt: skip
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentUpdate(version.id)
        version.version += 1
        self.seen.append(version)

    async def delete_version(self, version: DatasetVersion) -> None:
        await self.session.execute(delete(VERSIONS).where(VERSIONS.c.id == version.id))

    async def list_versions(
        self, dataset_id: str, states: tuple[int, ...], after: Keyset, limit: int
    ) -> builtins.list[DatasetVersion]:
        clauses = [VERSIONS.c.dataset_id == dataset_id, *_after(VERSIONS, after)]
        if states:
            clauses.append(VERSIONS.c.state.in_(states))
        statement = (
            select(VERSIONS).where(*clauses)
            .order_by(VERSIONS.c.create_time.desc(), VERSIONS.c.id.desc()).limit(limit)
        )  # fmt: skip
        return [_version(r) for r in (await self.session.execute(statement)).mappings()]

    async def count_versions(self, dataset_id: str, states: tuple[int, ...]) -> int:
        clauses = [VERSIONS.c.dataset_id == dataset_id]
        if states:
            clauses.append(VERSIONS.c.state.in_(states))
        statement = select(func.count()).select_from(VERSIONS).where(*clauses)
        return int((await self.session.execute(statement)).scalar_one())

    async def runs_using(self, version_names: builtins.list[str], limit: int = 10) -> builtins.list[str]:
        """Names of runs that are not final and train on one of ``version_names``."""
        if not version_names:
            return []
        statement = (
            select(RUNS.c.id)
            .where(
                RUNS.c.dataset_version.in_(version_names),
                RUNS.c.state.not_in([int(s) for s in TERMINAL_STATES]),
            )
            .limit(limit)
        )
        return [f"trainingRuns/{run_id}" for run_id in (await self.session.execute(statement)).scalars()]

    async def version_names(self, dataset_id: str) -> builtins.list[str]:
        statement = select(VERSIONS.c.number).where(VERSIONS.c.dataset_id == dataset_id)
        return [
            f"datasets/{dataset_id}/versions/{n}" for n in (await self.session.execute(statement)).scalars()
        ]


def _dataset_row(d: Dataset) -> dict[str, Any]:
    return {
        "id": d.id, "request_id": d.request_id or None, "owner": d.owner, "display_name": d.display_name,
        "description": d.description, "next_version": d.next_version, "create_time": d.create_time,
        "update_time": d.update_time or d.create_time,
    }  # fmt: skip


def _dataset(row: Any) -> Dataset:
    return Dataset(
        id=row["id"], owner=row["owner"], display_name=row["display_name"], create_time=row["create_time"],
        description=row["description"], request_id=row["request_id"] or "", update_time=row["update_time"],
        next_version=row["next_version"], version=row["version"],
    )  # fmt: skip


def _version_row(v: DatasetVersion) -> dict[str, Any]:
    s, failure = v.snapshot, v.failure
    return {
        "id": v.id, "dataset_id": v.dataset_id, "number": v.number, "owner": v.owner,
        "request_id": v.request_id or None, "description": v.description, "source_uri": v.source_uri,
        "upload": v.upload, "split_options": v.split_options, "snapshot_sha256": s.sha256,
        "manifest_key": s.manifest_key, "manifest_sha256": s.manifest_sha256,
        "manifest_size": s.manifest_size,
        "file_count": s.file_count, "size_bytes": s.size_bytes, "annotation_files": s.annotation_files,
        "state": int(v.state), "attempt": v.attempt, "progress": v.progress, "progress_seq": v.progress_seq,
        "problem_count": v.result.problem_count if v.result else 0,
        "result": v.result.payload if v.result else None,
        "failure": None if failure is None else {
            "kind": failure.kind.number, "message": failure.message, "details": list(failure.details)},
        "transitions": [list(t) for t in v.transitions], "create_time": v.create_time,
        "update_time": v.update_time or v.create_time, "ready_time": v.ready_time, "version": v.version,
    }  # fmt: skip


def _version(row: Any) -> DatasetVersion:
    failure = row["failure"]
    snapshot = Snapshot(
        sha256=row["snapshot_sha256"], manifest_key=row["manifest_key"],
        manifest_sha256=row["manifest_sha256"],
        manifest_size=row["manifest_size"], file_count=row["file_count"], size_bytes=row["size_bytes"],
        annotation_files=dict(row["annotation_files"]),
    )  # fmt: skip
    result = row["result"]
    return DatasetVersion(
        id=row["id"], dataset_id=row["dataset_id"], number=row["number"], owner=row["owner"],
        snapshot=snapshot, split_options=dict(row["split_options"]), create_time=row["create_time"],
        description=row["description"], source_uri=row["source_uri"], upload=row["upload"],
        request_id=row["request_id"] or "", state=VersionState(row["state"]), attempt=row["attempt"],
        progress=bytes(row["progress"] or b""), progress_seq=row["progress_seq"],
        result=None if result is None else PreparationResult(row["problem_count"], bytes(result)),
        failure=None if failure is None else Failure(
            FailureKind.from_number(failure["kind"]), failure["message"], tuple(failure.get("details", ()))),
        update_time=row["update_time"], ready_time=row["ready_time"],
        transitions=[(int(a), int(b), str(r)) for a, b, r in row["transitions"]], version=row["version"],
    )  # fmt: skip
