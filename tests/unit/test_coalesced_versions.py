"""``CoalescedVersions``: the version reads asked for in one event-loop turn share one statement, and no
caller is answered by a read that began before it asked (it would miss a write committed in between)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from services.training_run.adapters.run_versions import MAX_IDS, CoalescedVersions


class Store:
    """The rows, and each statement's ids; ``gate`` holds statements until the test lets them finish."""

    def __init__(self, rows: dict[str, int]) -> None:
        self.rows = rows
        self.statements: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def read_many(self, ids: list[str]) -> dict[str, int]:
        self.statements.append(ids)
        snapshot = dict(self.rows)  # what the statement sees: the rows as they are when it begins
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {run_id: snapshot[run_id] for run_id in ids if run_id in snapshot}


async def turns_until(condition: Callable[[], object]) -> None:
    for _ in range(20):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("not reached within 20 loop turns")


async def test_reads_of_one_turn_share_one_statement() -> None:
    store = Store({f"r{i}": i for i in range(20)})
    versions = CoalescedVersions(store.read_many)
    asked = [f"r{i % 20}" for i in range(100)] + ["gone"]
    found = await asyncio.gather(*(versions.version(run_id) for run_id in asked))
    assert found == [i % 20 for i in range(100)] + [None]
    assert len(store.statements) == 1 and sorted(store.statements[0]) == sorted({*asked})
    assert versions.statements == 1


async def test_a_caller_never_gets_a_read_that_began_before_it_asked() -> None:
    store = Store({"r": 1})
    versions = CoalescedVersions(store.read_many)
    store.gate.clear()
    first = asyncio.ensure_future(versions.version("r"))
    await turns_until(lambda: store.statements)  # the first statement has begun (it saw version 1)
    store.rows["r"] = 2  # a write commits
    second = asyncio.ensure_future(versions.version("r"))  # asked after: must not share the first statement
    await turns_until(lambda: len(store.statements) == 2)
    store.gate.set()
    assert (await first, await second) == (1, 2)
    assert len(store.statements) == 2


async def test_a_long_list_of_ids_is_split_and_a_failure_reaches_every_caller() -> None:
    store = Store({f"r{i}": i for i in range(MAX_IDS + 10)})
    versions = CoalescedVersions(store.read_many)
    found = await asyncio.gather(*(versions.version(f"r{i}") for i in range(MAX_IDS + 10)))
    assert found == list(range(MAX_IDS + 10))
    assert [len(ids) for ids in store.statements] == [MAX_IDS, 10]
    store.fail = OSError("disk I/O error")
    results = await asyncio.gather(*(versions.version(f"r{i}") for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)


async def test_a_caller_that_gives_up_leaves_the_others_their_answer() -> None:
    store = Store({"r": 7})
    versions = CoalescedVersions(store.read_many)
    store.gate.clear()
    quitter = asyncio.ensure_future(versions.version("r"))
    stayer = asyncio.ensure_future(versions.version("r"))
    await turns_until(lambda: store.statements)
    quitter.cancel()
    store.gate.set()
    assert await stayer == 7
    with pytest.raises(asyncio.CancelledError):
        await quitter
    await versions.close()
