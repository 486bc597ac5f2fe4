"""common.tasks: every shutdown step and background task stops within its bound, or is named and left."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from structlog.testing import capture_logs

from common.tasks import Step, bounded, cancel_and_wait, shut_down


async def _stubborn(release: asyncio.Event) -> None:
    """Swallows cancellation, as nats-py's next_msg did to a consumer whose connection was closing."""
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            pass


@contextlib.asynccontextmanager
async def stubborn_task(name: str = "") -> AsyncIterator[asyncio.Task[None]]:
    """A task that ignores cancellation, released at the end (left over, it would hang the session's loop)."""
    release = asyncio.Event()
    task = asyncio.create_task(_stubborn(release), name=name or None)
    await asyncio.sleep(0)
    try:
        yield task
    finally:
        release.set()
        await task


async def test_a_task_that_ignores_its_cancel_is_abandoned_with_its_name_and_where_it_waits() -> None:
    async with stubborn_task("svc.consumer") as task:
        with capture_logs() as logs:
            stopped = await asyncio.wait_for(cancel_and_wait(task, within=0.2), 2)
        assert not stopped and not task.done()
    (line,) = [entry for entry in logs if entry["event"] == "task did not stop; abandoned"]
    assert line["task"] == "svc.consumer" and "_stubborn" in line["waiting_at"]


async def test_cancel_and_wait_does_not_swallow_the_callers_own_cancellation() -> None:
    async with stubborn_task() as inner:
        outer = asyncio.create_task(cancel_and_wait(inner, within=30))
        await asyncio.sleep(0.05)
        outer.cancel()
        done, _ = await asyncio.wait({outer}, timeout=2)
    assert done and outer.cancelled()


async def test_a_stuck_step_is_abandoned_after_its_bound_and_the_shutdown_goes_on() -> None:
    ran: list[str] = []
    never = asyncio.Event()

    async def stuck() -> None:
        await never.wait()

    async def failing() -> None:
        raise RuntimeError("boom")

    async def last() -> None:
        ran.append("database")

    steps = [
        Step("grpc server", stuck, lambda: {"/raven.v1.S/Watch": 2}),
        Step("nats", failing),
        Step("database", last),
    ]
    loop = asyncio.get_running_loop()
    started = loop.time()
    with capture_logs() as logs:
        abandoned = await shut_down("svc", steps, within=0.3)
    assert loop.time() - started < 2
    assert abandoned == ["grpc server"] and ran == ["database"]
    events = {entry["event"]: entry for entry in logs}
    timed_out = events["shutdown step timed out; abandoned"]
    assert timed_out["step"] == "grpc server" and timed_out["waiting_for"] == {"/raven.v1.S/Watch": 2}
    assert events["shutdown step failed"]["step"] == "nats"


async def test_a_stuck_step_without_a_description_names_where_it_waits() -> None:
    never = asyncio.Event()

    async def close_channel() -> None:
        await never.wait()

    with capture_logs() as logs:
        assert not await bounded("svc", Step("client", close_channel), within=0.1)
    (line,) = [entry for entry in logs if entry["event"] == "shutdown step timed out; abandoned"]
    assert "close_channel" in line["waiting_for"]


async def test_a_task_inside_a_step_gets_most_of_the_steps_bound() -> None:
    async with stubborn_task("svc.reaper") as task:

        async def stop() -> None:
            await cancel_and_wait(task)  # no timeout of its own: the step's

        with capture_logs() as logs:
            finished = await asyncio.wait_for(bounded("svc", Step("reaper", stop), within=0.5), 2)
    assert finished  # the task was named and left before the step's bound ran out
    assert [e["task"] for e in logs if e["event"] == "task did not stop; abandoned"] == ["svc.reaper"]


async def test_a_lost_cancellation_is_asked_again() -> None:
    lost = 0

    async def loses_the_first_cancel() -> None:
        nonlocal lost
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if lost:
                    raise
                lost += 1  # as asyncio.wait_for did when its future completed with the cancel

    task = asyncio.create_task(loses_the_first_cancel())
    await asyncio.sleep(0)
    try:
        assert await asyncio.wait_for(cancel_and_wait(task, within=5), 5)
        assert task.cancelled() and lost == 1
    finally:
        task.cancel()
