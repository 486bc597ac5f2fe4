"""Background asyncio tasks that services start and stop with the process, and shutdown within a bound.

Every shutdown path is bounded: a step (or a task) that does not finish within its timeout is abandoned
with a warning naming it and what it was still waiting for, so a stuck step can never hang a process
(or a test session's event loop) on its way out.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from common.logging import get_logger

log = get_logger("shutdown")
_ASYNCIO_DIR = str(Path(asyncio.__file__).parent)

STEP_TIMEOUT_SECONDS = 10.0  # each shutdown step; a healthy one takes milliseconds
RECANCEL_SECONDS = 0.25  # a cancel can be lost (see cancel_and_wait): asked again this often
# Inside a bounded step a task gets most of the step's time, so a stuck task is named before its step is.
_TASK_TIMEOUT: contextvars.ContextVar[float] = contextvars.ContextVar(
    "task_timeout", default=STEP_TIMEOUT_SECONDS
)


class Stoppable(Protocol):
    """A background task's owner (relay, consumer, reaper, refresher)."""

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Step:
    """One step of a shutdown; ``waiting_for()`` describes what it still waits on (streams, tasks)."""

    name: str
    work: Callable[[], Awaitable[object]]
    waiting_for: Callable[[], object] | None = None
    timeout: float | None = None  # this step's own bound, instead of the shutdown's per-step one


def raise_if_cancelling() -> None:
    """Re-raise a cancellation of the current task that a library turned into another error: nats-py's
    ``next_msg`` makes a cancel that meets a closed connection a ``ConnectionClosedError``, and a loop that
    retries errors would swallow it and never stop. Call it first in such a loop's ``except``."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def suspended_at(task: asyncio.Future[Any]) -> str:
    """Where ``task`` waits: its await chain as ``file.py:line in function`` (without asyncio's frames)."""
    awaited: Any = task.get_coro() if isinstance(task, asyncio.Task) else None
    chain = []
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
        if frame is not None and not frame.f_code.co_filename.startswith(_ASYNCIO_DIR):
            chain.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
    return " > ".join(chain) or "unknown"


async def cancel_and_wait(task: asyncio.Task[Any] | None, within: float | None = None) -> bool:
    """Cancel ``task`` (if any) and wait up to ``within`` seconds (default: most of the enclosing shutdown
    step's bound) for it to finish; True when it did.

    A cancellation can be lost: Python 3.11's ``asyncio.wait_for`` swallows one that arrives as its future
    completes (CPython gh-86296), and nats-py's ``next_msg`` waits in ``wait_for`` inside a task of its own,
    so a consumer cancelled just as a message came kept fetching and a shutdown awaiting it hung. The
    cancel is therefore asked again every ``RECANCEL_SECONDS``. A task that still does not end (it ignores
    cancellation, or waits in a ``finally``) is abandoned with a warning naming it and where it waits. The
    caller's own cancellation is never suppressed.
    """
    if task is None:
        return True
    within = _TASK_TIMEOUT.get() if within is None else within
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    done: set[asyncio.Task[Any]] = set()
    while not done and loop.time() < deadline:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=min(RECANCEL_SECONDS, deadline - loop.time()))
    if done:
        if not task.cancelled() and task.exception() is not None:
            log.warning("task failed while stopping", task=task.get_name(), error=repr(task.exception()))
        return True
    log.warning(
        "task did not stop; abandoned",
        task=task.get_name(),
        waiting_at=suspended_at(task),
        timeout_seconds=within,
    )
    return False


async def bounded(service: str, step: Step, within: float = STEP_TIMEOUT_SECONDS) -> bool:
    """Run one shutdown step for at most ``within`` seconds; True when it finished.

    A step that fails is logged and counts as finished (shutdown goes on). One that is still running after
    ``within`` is cancelled and abandoned with a warning naming the step and what it waits for
    (``step.waiting_for()``, else where the step is suspended).
    """
    context = contextvars.copy_context()
    context.run(_TASK_TIMEOUT.set, within * 0.8)
    task = asyncio.get_running_loop().create_task(
        _run(step.work), name=f"{service}.shutdown.{step.name}", context=context
    )
    try:
        done, _ = await asyncio.wait({task}, timeout=within)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        if not task.cancelled() and task.exception() is not None:
            log.warning("shutdown step failed", service=service, step=step.name, error=repr(task.exception()))
        return True
    log.warning(
        "shutdown step timed out; abandoned",
        service=service,
        step=step.name,
        waiting_for=step.waiting_for() if step.waiting_for is not None else suspended_at(task),
        timeout_seconds=within,
    )
    task.cancel()
    return False


async def _run(work: Callable[[], Awaitable[object]]) -> None:
    await work()


async def shut_down(service: str, steps: Sequence[Step], within: float = STEP_TIMEOUT_SECONDS) -> list[str]:
    """Run ``steps`` in order, each bounded by ``within`` seconds (or its own ``timeout``); returns the names
    of the abandoned ones."""
    abandoned = []
    for step in steps:
        if not await bounded(service, step, within if step.timeout is None else step.timeout):
            abandoned.append(step.name)
    if abandoned:
        log.warning("shut down with steps abandoned", service=service, abandoned=abandoned)
    return abandoned
