"""SQL repository of the workers training_run has seen, and the run counts ListWorkers needs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import mapped_table
from services.training_run.adapters.orm import TrainingRunRow, WorkerRow
from services.training_run.adapters.repository import ConcurrentUpdate
from services.training_run.domain.model import RunState
from services.training_run.domain.workers import SeenWorker, WorkerInfo

WORKERS = mapped_table(WorkerRow)
RUNS = mapped_table(TrainingRunRow)
LEASED_STATES = (RunState.RUNNING, RunState.CANCELLING)


class WorkerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(self, worker_id: str, info: WorkerInfo, now: datetime) -> None:
        """Inserts or refreshes the worker.

        Raises:
            ConcurrentUpdate: another replica inserted the same new worker first; retry in a new transaction.
        """
        row = await self._session.execute(select(WORKERS).where(WORKERS.c.worker_id == worker_id))
        found = row.one_or_none()
        if found is None:
            try:
                await self._session.execute(insert(WORKERS).values(
                    worker_id=worker_id, first_seen_time=now, last_seen_time=now, **_info_values(info)
                ))  # fmt: skip
            except IntegrityError as exc:
                raise ConcurrentUpdate(f"worker {worker_id} was added concurrently") from exc
            return
        worker = _to_domain(found)
        worker.seen_again(info, now)
        await self._session.execute(
            update(WORKERS)
            .where(WORKERS.c.worker_id == worker_id)
            .values(last_seen_time=worker.last_seen_time, **_info_values(worker.info))
        )

    async def seen_since(self, since: datetime, limit: int = 1000) -> list[SeenWorker]:
        """Workers seen at or after ``since``, most recent first, each with the runs it holds a lease on."""
        rows = await self._session.execute(
            select(WORKERS)
            .where(WORKERS.c.last_seen_time >= since)
            .order_by(WORKERS.c.last_seen_time.desc(), WORKERS.c.worker_id)
            .limit(limit)
        )
        workers = [_to_domain(r) for r in rows]
        by_id = {w.worker_id: w for w in workers}
        if by_id:
            leased = await self._session.execute(
                select(RUNS.c.worker_id, RUNS.c.id)
                .where(RUNS.c.state.in_([int(s) for s in LEASED_STATES]), RUNS.c.worker_id.in_(list(by_id)))
                .order_by(RUNS.c.id)
            )
            for worker_id, run_id in leased:
                by_id[worker_id].training_runs.append(run_id)
        return workers

    async def pending_by_template(self) -> dict[str, int]:
        rows = await self._session.execute(
            select(RUNS.c.model_template, func.count())
            .where(RUNS.c.state == int(RunState.PENDING))
            .group_by(RUNS.c.model_template)
        )
        return {template: count for template, count in rows}


def _info_values(info: WorkerInfo) -> dict[str, object]:
    return {
        "device_kind": info.device_kind,
        "gpu_model": info.gpu_model,
        "gpu_count": info.gpu_count,
        "slots": info.slots,
        "gpus_per_run": info.gpus_per_run,
    }


def _to_domain(row: Row[Any]) -> SeenWorker:
    r = row._mapping
    return SeenWorker(
        worker_id=r["worker_id"],
        info=WorkerInfo(r["device_kind"], r["gpu_model"], r["gpu_count"], r["slots"], r["gpus_per_run"]),
        first_seen_time=r["first_seen_time"],
        last_seen_time=r["last_seen_time"],
    )
