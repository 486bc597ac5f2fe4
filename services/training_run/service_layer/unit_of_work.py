"""Unit of work: one DB transaction, rolled back unless committed.

The runs' domain events go to the outbox in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.errors import Aborted
from common.nats_streams import StreamNames
from common.retry import CONFLICTS, Failures
from services.training_run.adapters import outbox
from services.training_run.adapters.dataset_repository import DatasetRepository
from services.training_run.adapters.repository import ConcurrentUpdate, RunRepository
from services.training_run.adapters.workers import WorkerRepository
from services.training_run.domain.model import TrainingRun

T = TypeVar("T")


class UnitOfWork:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        names: StreamNames,
        clock: Callable[[], datetime],
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self._factory = session_factory
        self._names = names
        self._clock = clock
        self._after_commit = after_commit
        self.session: AsyncSession
        self.runs: RunRepository
        self.workers: WorkerRepository
        self.datasets: DatasetRepository

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._factory()
        self.runs = RunRepository(self.session)
        self.workers = WorkerRepository(self.session)
        self.datasets = DatasetRepository(self.session)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.session.rollback()
        finally:
            await self.session.close()

    async def commit(self) -> None:
        seen = self.runs.seen
        versions = self.datasets.seen
        written = await outbox.write_events(self.session, seen, self._names, self._clock())
        written += await outbox.write_dataset_events(self.session, versions, self._names, self._clock())
        await self.session.commit()
        for run in seen:
            run.events.clear()
        for version in versions:
            version.events.clear()
        self.runs.seen = []
        self.datasets.seen = []
        if written and self._after_commit is not None:
            self._after_commit()

    async def has_unsent_messages(self, run_id: str) -> bool:
        return await outbox.has_unsent(self.session, run_id)

    async def unsent_messages(self) -> int:
        return await outbox.count_unsent(self.session)


class UnitOfWorkFactory:
    """Makes units of work; ``after_commit`` wakes the outbox relay."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        names: StreamNames,
        clock: Callable[[], datetime],
        read_session_factory: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.read_session_factory = read_session_factory or session_factory
        self.names = names
        self.clock = clock
        self.after_commit: Callable[[], None] | None = None

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory, self.names, self.clock, self.after_commit)

    def reading(self) -> UnitOfWork:
        """A unit of work for one read statement (never committed): no transaction round trips where the
        database allows (:func:`common.db.make_read_session_factory`)."""
        return UnitOfWork(self.read_session_factory, self.names, self.clock)


async def change_with_retries(
    new_uow: UnitOfWorkFactory,
    load: Callable[[UnitOfWork], Awaitable[TrainingRun]],
    change: Callable[[TrainingRun], T],
    *,
    retry_conflicts: bool = True,
    save_only_if: Callable[[T], bool] | None = None,
) -> T:
    """Load a run, change it and save it in one transaction; on a concurrent write (optimistic ``version``)
    start again from a fresh read, as :data:`common.retry.CONFLICTS` allows (8 tries in all).

    ``retry_conflicts=False`` (a change made against an etag the caller read) makes a conflict ABORTED at
    once; ``save_only_if`` skips the write when the change's result says nothing changed.
    """
    conflicts = Failures(CONFLICTS)
    while True:
        async with new_uow() as uow:
            run = await load(uow)
            result = change(run)
            if save_only_if is not None and not save_only_if(result):
                return result
            try:
                await uow.runs.save(run)
            except ConcurrentUpdate:
                if not retry_conflicts:
                    raise Aborted("the run changed meanwhile: read it again and retry") from None
                if await conflicts.failed():
                    continue
                raise Aborted("the run is changing too often; retry") from None
            await uow.commit()
            return result
