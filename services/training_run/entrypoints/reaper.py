"""Periodic lease reaper.

Expired leases become PENDING (attempt + 1, job re-published) or FAILED (WORKER_LOST); PENDING runs past
their max_pending become FAILED (TIMED_OUT).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from common.logging import get_logger
from common.tasks import cancel_and_wait

log = get_logger("training_run.reaper")


class Reaper:
    def __init__(self, reap: Callable[[], Awaitable[int]], interval_seconds: float) -> None:
        self._reap = reap
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="training_run.reaper")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                changed = await self._reap()
                if changed:
                    log.info("expired leases and overdue pending runs handled", runs=changed)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reaper step failed")
            await asyncio.sleep(self._interval)
