"""Unit of work: one DB transaction, rolled back unless committed."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.trained_model.adapters.evaluation_repository import SqlEvaluationRepository
from services.trained_model.adapters.repository import DuplicateRow, SqlModelRepository


class UnitOfWork:
    """``async with uow:`` opens a transaction that rolls back unless ``commit()`` was called."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = session_factory
        self.session: AsyncSession
        self.models: SqlModelRepository
        self.evaluations: SqlEvaluationRepository

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._factory()
        self.models = SqlModelRepository(self.session)
        self.evaluations = SqlEvaluationRepository(self.session)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.session.rollback()
        finally:
            await self.session.close()

    async def commit(self) -> None:
        try:
            await self.session.commit()
        except IntegrityError as exc:
            raise DuplicateRow(str(exc.orig)) from exc


class UnitOfWorkFactory:
    """Makes units of work."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)
