"""common.retry's conflict policy and the optimistic-concurrency loops built on it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from common.errors import Aborted
from common.retry import CONFLICTS, Failures, RetryPolicy
from services.training_run.adapters.repository import ConcurrentUpdate
from services.training_run.service_layer import unit_of_work
from services.training_run.service_layer.discovery import WORKER_RECORD_CONFLICTS, Discovery


class _Uow:
    """Stands in for a unit of work whose save/record conflicts ``conflicts`` times, then succeeds."""

    def __init__(self, shared: dict[str, int]) -> None:
        self._shared = shared
        self.runs = SimpleNamespace(save=self._write)
        self.workers = SimpleNamespace(record=self._record)

    async def __aenter__(self) -> _Uow:
        self._shared["opened"] += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._shared["closed"] += 1

    async def _write(self, *args: object) -> None:
        self._shared["writes"] += 1
        if self._shared["writes"] <= self._shared["conflicts"]:
            raise ConcurrentUpdate("version moved")

    async def _record(self, *args: object) -> None:
        await self._write()

    async def commit(self) -> None:
        self._shared["commits"] += 1


def _factory(conflicts: int) -> tuple[Any, dict[str, int]]:
    shared = {"opened": 0, "closed": 0, "writes": 0, "commits": 0, "conflicts": conflicts}
    return (lambda: _Uow(shared)), shared


async def _load(uow: object) -> Any:
    return SimpleNamespace()


def test_conflicts_try_eight_times_without_sleeping() -> None:
    assert CONFLICTS.max_attempts == 8
    assert {CONFLICTS.backoff(n) for n in range(1, 9)} == {0.0}
    assert RetryPolicy.at_once(3) == WORKER_RECORD_CONFLICTS


async def test_an_at_once_policy_never_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(delay: float) -> None:
        raise AssertionError(f"slept {delay}")

    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    failures = Failures(RetryPolicy.at_once(3))
    assert [await failures.failed() for _ in range(3)] == [True, True, False]


async def test_change_with_retries_tries_eight_times_then_aborts() -> None:
    new_uow, shared = _factory(conflicts=100)
    with pytest.raises(Aborted, match="changing too often"):
        await unit_of_work.change_with_retries(new_uow, _load, lambda run: "changed")
    assert shared["writes"] == 8 and shared["commits"] == 0
    assert shared["opened"] == shared["closed"] == 8


async def test_change_with_retries_commits_once_the_conflict_is_gone() -> None:
    new_uow, shared = _factory(conflicts=7)
    assert await unit_of_work.change_with_retries(new_uow, _load, lambda run: "changed") == "changed"
    assert shared["writes"] == 8 and shared["commits"] == 1


async def test_a_change_against_an_etag_aborts_at_the_first_conflict() -> None:
    new_uow, shared = _factory(conflicts=1)
    with pytest.raises(Aborted, match="changed meanwhile"):
        await unit_of_work.change_with_retries(new_uow, _load, lambda run: 1, retry_conflicts=False)
    assert shared["writes"] == 1


async def test_a_worker_record_is_tried_three_times() -> None:
    new_uow, shared = _factory(conflicts=100)
    discovery = Discovery(new_uow, lambda: datetime.now(UTC))
    info: Any = SimpleNamespace(violations=list)
    with pytest.raises(Aborted, match="recorded concurrently"):
        await discovery.worker_seen("w1", info)
    assert shared["writes"] == 3
    new_uow, shared = _factory(conflicts=2)
    await Discovery(new_uow, lambda: datetime.now(UTC)).worker_seen("w1", info)
    assert shared["writes"] == 3 and shared["commits"] == 1
