"""The intake loop: one job per free slot, each on its own device, until told to stop.

It only receives: each fetched message goes to ``service_layer/attempt.Attempts.run``, which works it to
its settlement.

``run`` fetches while a slot is free; ``shutdown`` (SIGTERM) stops fetching, asks every running job to stop
and checkpoint, lets each release its lease and nak its message, then returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable

from common.logging import get_logger
from common.tasks import cancel_and_wait, raise_if_cancelling
from services.trainer_worker.adapters.jobs import JobQueue
from services.trainer_worker.domain.job import Settlement, StopReason
from services.trainer_worker.service_layer.attempt import Attempts

log = get_logger("trainer_worker")

FETCH_TIMEOUT = 1.0
SETTLE_SECONDS = 120.0  # running jobs asked to stop: checkpoint, release, nak (child killed after its grace)


class Worker:
    def __init__(
        self,
        *,
        queue: JobQueue,
        attempts: Attempts,
        devices: list[str],
        fetch_timeout: float = FETCH_TIMEOUT,
        announce: Callable[[], Awaitable[None]] | None = None,
        announce_seconds: float = 10.0,
        settle_seconds: float = SETTLE_SECONDS,
    ):
        if not devices:
            raise ValueError("a worker needs at least one slot")
        self._queue = queue
        self._attempts = attempts
        self._free: asyncio.Queue[str] = asyncio.Queue()
        for device in devices:
            self._free.put_nowait(device)
        self._fetch_timeout = fetch_timeout
        self._stopping = asyncio.Event()
        self._jobs: set[asyncio.Task[Settlement]] = set()
        self.settlements: list[Settlement] = []  # in completion order (diagnostics, tests)
        # Tells training_run this worker is alive even while idle (ListWorkers).
        self._announce = announce
        self._announce_seconds = announce_seconds
        self._settle_seconds = settle_seconds

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        """Takes jobs until ``shutdown``; returns once every running job has been settled."""
        log.info("worker started", slots=self._free.qsize())
        presence = asyncio.create_task(self._announce_loop(), name="presence") if self._announce else None
        try:
            while not self._stopping.is_set():
                raise_if_cancelling()  # a cancel lost inside the fetch (common.tasks.cancel_and_wait)
                device = await self._next_free_device()
                if device is None:
                    break
                msg = None
                try:
                    msg = await self._queue.fetch_one(self._fetch_timeout)
                except Exception as exc:
                    raise_if_cancelling()
                    log.warning("fetch failed", error=str(exc))
                    await asyncio.sleep(self._fetch_timeout)
                if msg is None or self._stopping.is_set():
                    if msg is not None:
                        await msg.nak(delay=0)  # fetched while shutting down: hand it straight back
                    self._free.put_nowait(device)
                    continue
                task = asyncio.create_task(self._attempts.run(msg, device), name="job")
                self._jobs.add(task)
                task.add_done_callback(functools.partial(self._job_done, device=device))
        finally:
            await self._settle()
            await cancel_and_wait(presence)
            log.info("worker stopped")

    async def _announce_loop(self) -> None:
        assert self._announce is not None
        failing = False
        while not self._stopping.is_set():
            try:
                await self._announce()
                failing = False
            except Exception as exc:  # training_run down: jobs will wait for it anyway; log once per outage
                if not failing:
                    log.warning("presence heartbeat failed", error=str(exc))
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._announce_seconds)

    async def _next_free_device(self) -> str | None:
        get = asyncio.create_task(self._free.get())
        stop = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if get.done():
            device = get.result()
            if self._stopping.is_set():
                self._free.put_nowait(device)
                return None
            return device
        get.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await get
        return None

    def _job_done(self, task: asyncio.Task[Settlement], *, device: str) -> None:
        self._jobs.discard(task)
        self._free.put_nowait(device)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # Attempts.run is built not to raise; log if it ever does, keep the worker alive
            log.error("job crashed its attempt", error=repr(exc))
            return
        self.settlements.append(task.result())

    async def shutdown(self) -> None:
        """Stop taking jobs; running jobs checkpoint, release their lease and nak; returns when all did."""
        if not self._stopping.is_set():
            log.info("worker shutting down", running=len(self._jobs))
        self._stopping.set()
        self._attempts.stop_all(StopReason.SHUTDOWN, "worker shutting down")
        await self._settle()

    async def _settle(self) -> None:
        """Wait for the running jobs to settle, at most ``settle_seconds``; then name the ones left behind
        (their leases expire and training_run requeues them)."""
        if not self._jobs:
            return
        _, pending = await asyncio.wait(set(self._jobs), timeout=self._settle_seconds)
        if pending:
            log.warning(
                "shutdown: jobs not settled in time; abandoned",
                waiting_for=sorted(self._attempts.active),
                jobs=len(pending),
                timeout_seconds=self._settle_seconds,
            )
