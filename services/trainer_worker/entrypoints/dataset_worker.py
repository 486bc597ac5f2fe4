"""The dataset preparation intake: one preparation at a time, beside the training slots, until told to stop.

Preparing a version is CPU and I/O work in a thread (no GPU), so it does not take a training slot; a worker
prepares one version at a time. ``shutdown`` stops fetching; a preparation still running hands its message
back at once (``service_layer/dataset_preparation``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from common.logging import get_logger
from services.trainer_worker.adapters.jobs import JobMessage, JobQueue
from services.trainer_worker.domain.job import Settlement

log = get_logger("trainer_worker.datasets")

FETCH_TIMEOUT = 1.0


class DatasetWorker:
    def __init__(
        self,
        *,
        queue: JobQueue,
        handle: Callable[[JobMessage], Awaitable[Settlement]],
        stopping: asyncio.Event,
        fetch_timeout: float = FETCH_TIMEOUT,
        what: str = "dataset preparation",
    ) -> None:
        self._queue = queue
        self._handle = handle
        self._stopping = stopping  # shared with the handler: a running preparation hands its job back
        self._fetch_timeout = fetch_timeout
        self._what = what  # the job kind, in logs: the evaluation intake is this class too
        self.settlements: list[Settlement] = []  # in completion order (diagnostics, tests)

    async def run(self) -> None:
        """Takes preparation jobs until ``shutdown``, then closes the job subscription."""
        log.info("intake started", kind=self._what)
        try:
            await self._take_jobs()
        finally:
            await self._queue.close()
        log.info("intake stopped", kind=self._what)

    async def _take_jobs(self) -> None:
        while not self._stopping.is_set():
            try:
                msg = await self._queue.fetch_one(self._fetch_timeout)
            except Exception as exc:
                log.warning("job fetch failed", kind=self._what, error=str(exc))
                await asyncio.sleep(self._fetch_timeout)
                continue
            if msg is None:
                continue
            if self._stopping.is_set():
                await msg.nak(delay=0)
                break
            try:
                self.settlements.append(await self._handle(msg))
            except Exception as exc:  # the handler is built not to raise; keep the intake alive if it does
                log.error("job crashed its handler", kind=self._what, error=repr(exc))

    async def shutdown(self) -> None:
        self._stopping.set()
