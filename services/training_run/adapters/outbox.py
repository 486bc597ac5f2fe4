"""Transactional outbox: domain events become rows in the run's transaction, relayed after commit.

Jobs and run events go to JetStream with a deterministic ``Nats-Msg-Id`` (the stream's duplicate window drops
a re-publish after a crash between publish and "mark sent"); cancel controls go to core NATS (fire and forget:
the worker also learns about CANCELLING from its heartbeat response).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db import mapped_table
from common.logging import get_logger
from common.nats_streams import StreamNames, job_msg_id
from common.tasks import cancel_and_wait
from services.training_run.adapters import dataset_mapping, proto_mapping
from services.training_run.adapters.orm import OutboxRow
from services.training_run.domain.datasets import DatasetVersion
from services.training_run.domain.model import (
    CancelRequested,
    DomainEvent,
    JobRequested,
    StateChanged,
    TrainingRun,
)

OUTBOX = mapped_table(OutboxRow)
KIND_JOB = "job"
KIND_EVENT = "event"
KIND_CONTROL = "control"
log = get_logger("training_run.outbox")


def outbox_row(event: DomainEvent, run: TrainingRun, names: StreamNames, now: datetime) -> dict[str, Any]:
    if isinstance(event, JobRequested):
        payload = proto_mapping.training_job(run, event.attempt).SerializeToString()
        subject = names.training_jobs_subject(int(run.spec.hyperparameters.get("gpus") or 1))
        return _row(run.id, KIND_JOB, subject, job_msg_id(run.id, event.attempt), payload, now)
    if isinstance(event, StateChanged):
        payload = proto_mapping.state_changed_event(event).SerializeToString()
        msg_id = f"{run.id}:state:{event.index}"
        return _row(run.id, KIND_EVENT, names.run_events_subject(run.id), msg_id, payload, now)
    if isinstance(event, CancelRequested):
        payload = proto_mapping.control_message(event).SerializeToString()
        return _row(run.id, KIND_CONTROL, names.run_control_subject(run.id), "", payload, now)
    raise TypeError(f"no outbox message for {event!r}")


def _row(run_id: str, kind: str, subject: str, msg_id: str, payload: bytes, now: datetime) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "kind": kind,
        "subject": subject,
        "msg_id": msg_id,
        "payload": payload,
        "create_time": now,
        "sent_time": None,
    }


async def write_events(
    session: AsyncSession, runs: list[TrainingRun], names: StreamNames, now: datetime
) -> int:
    rows = [outbox_row(event, run, names, now) for run in runs for event in run.events]
    if rows:
        await session.execute(insert(OUTBOX), rows)
    return len(rows)


async def write_dataset_events(
    session: AsyncSession, versions: list[DatasetVersion], names: StreamNames, now: datetime
) -> int:
    """The preparation jobs and state changes of dataset versions (keyed by the version's id)."""
    rows = []
    for version in versions:
        for event in version.events:
            kind, subject, msg_id, payload = dataset_mapping.outbox_message(event, version, names)
            rows.append(_row(version.id, kind, subject, msg_id, payload, now))
    if rows:
        await session.execute(insert(OUTBOX), rows)
    return len(rows)


async def has_unsent(session: AsyncSession, run_id: str) -> bool:
    statement = select(OUTBOX.c.id).where(OUTBOX.c.run_id == run_id, OUTBOX.c.sent_time.is_(None)).limit(1)
    return (await session.execute(statement)).first() is not None


async def count_unsent(session: AsyncSession) -> int:
    statement = select(func.count()).select_from(OUTBOX).where(OUTBOX.c.sent_time.is_(None))
    return int((await session.execute(statement)).scalar_one())


class OutboxRelay:
    """Publishes unsent rows in id order; woken right after each commit, and polls as a safety net."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        nc: NATS,
        js: JetStreamContext,
        clock: Callable[[], datetime],
        *,
        poll_seconds: float = 1.0,
        batch: int = 200,
    ) -> None:
        self._sessions = session_factory
        self._nc = nc
        self._js = js
        self._clock = clock
        self._poll = poll_seconds
        self._batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="training_run.outbox_relay")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                while await self.publish_pending() == self._batch:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay step failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows; returns how many were published."""
        async with self._sessions() as session:
            statement = (
                select(OUTBOX)
                .where(OUTBOX.c.sent_time.is_(None))
                .order_by(OUTBOX.c.id)
                .limit(self._batch)
                .with_for_update(skip_locked=True)  # replicas share the table (ignored on SQLite)
            )
            rows = (await session.execute(statement)).mappings().all()
            if not rows:
                return 0
            sent: list[int] = []
            try:
                for row in rows:
                    await self._publish(row)
                    sent.append(row["id"])
            finally:
                if sent:
                    await session.execute(
                        update(OUTBOX).where(OUTBOX.c.id.in_(sent)).values(sent_time=self._clock())
                    )
                await session.commit()
            return len(sent)

    async def _publish(self, row: Any) -> None:
        if row["kind"] == KIND_CONTROL:
            await self._nc.publish(row["subject"], row["payload"])
            return
        await self._js.publish(row["subject"], row["payload"], headers={"Nats-Msg-Id": row["msg_id"]})
