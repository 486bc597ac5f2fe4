"""One dataset version preparation job, worked to its settlement.

The preparation itself (``adapters/version_preparation.prepare_version``) is blocking: it runs in a worker
thread, never on the event loop; its progress comes back through ``call_soon_threadsafe`` and is published
(rate-limited) while the message is kept in progress. The result is published durably, then the message is
acked: READY with the profile and split, or INVALID with every problem; a version whose stored files do not
match its manifest fails with ARTIFACT_MISMATCH. Any other error is retried by redelivery and, on the last
delivery, reported as a failure, so no version waits forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from common.artifacts import ArtifactStore
from common.logging import get_logger
from common.nats_streams import RetryPolicy
from common.proto.raven.v1 import types_pb2
from common.tasks import cancel_and_wait
from services.trainer_worker.adapters import dataset_proto
from services.trainer_worker.adapters.dataset_jobs import DatasetEventPublisher, parse_job
from services.trainer_worker.adapters.jobs import JobMessage
from services.trainer_worker.adapters.version_preparation import (
    PreparedVersion,
    VersionFilesChanged,
    VersionSpec,
    prepare_version,
)
from services.trainer_worker.domain.job import Settlement
from services.trainer_worker.service_layer.ports import EventPublishFailed

log = get_logger("trainer_worker.datasets")

Progress = tuple[str, int, int]


@dataclass
class PreparationServices:
    store: ArtifactStore
    publisher_for: Callable[[str, int], DatasetEventPublisher]
    worker_id: str
    ack_wait: float
    retry: RetryPolicy  # the job consumer's: decides when a failing job has had its last delivery
    stopping: asyncio.Event


async def prepare_job(msg: JobMessage, services: PreparationServices) -> Settlement:
    """Work one delivered job; returns how its message was settled."""
    try:
        job = parse_job(msg.data)
        spec = dataset_proto.version_spec(job)
    except ValueError as exc:
        await msg.reject(str(exc))
        return Settlement.TERM
    publisher = services.publisher_for(job.dataset_version, job.attempt)
    await publisher.started(services.worker_id)
    log.info("preparing dataset version", version=job.dataset_version, attempt=job.attempt)
    try:
        prepared = await _prepare_off_loop(msg, spec, publisher, services)
    except _Abandoned:
        await msg.nak(delay=0)  # shutting down: another worker takes it at once
        return Settlement.NAK
    except VersionFilesChanged as exc:
        failure = types_pb2.Failure(
            kind=types_pb2.ARTIFACT_MISMATCH,
            message=f"the version's stored files are damaged: {exc}; create the version again",
        )
        return await _settle(msg, publisher.failed(failure))
    except Exception as exc:  # a bug or an unreachable store: retry, and report on the last delivery
        log.exception("dataset preparation failed", version=job.dataset_version)
        if not services.retry.exhausted(msg.num_delivered):
            await msg.fail(f"dataset preparation failed: {type(exc).__name__}")
            return Settlement.NAK
        failure = types_pb2.Failure(
            kind=types_pb2.INTERNAL_ERROR,
            message=f"preparing the version failed on every try ({type(exc).__name__}); ask an operator",
        )
        return await _settle(msg, publisher.failed(failure))
    log.info(
        "dataset version prepared",
        version=job.dataset_version,
        problems=prepared.problem_count,
        seconds={k: round(v, 3) for k, v in prepared.stage_seconds.items()},
    )
    return await _settle(msg, publisher.completed(dataset_proto.completed(prepared, spec)))


# Its own thread, not the loop's default executor: a preparation abandoned at shutdown finishes there
# without holding up ``asyncio.run``'s default-executor shutdown, nor the threads the rest of the worker uses.
PUMP_STOP_SECONDS = 10.0
_PREPARATION_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataset-preparation")


class _Abandoned(Exception):
    pass


async def _prepare_off_loop(
    msg: JobMessage, spec: VersionSpec, publisher: DatasetEventPublisher, services: PreparationServices
) -> PreparedVersion:
    loop = asyncio.get_running_loop()
    updates: asyncio.Queue[Progress] = asyncio.Queue()

    def progress(step: str, done: int, total: int) -> None:  # called from the preparation's thread
        loop.call_soon_threadsafe(updates.put_nowait, (step, done, total))

    async def pump() -> None:
        while True:
            await publisher.progress(*await updates.get())

    work = loop.run_in_executor(_PREPARATION_THREAD, prepare_version, services.store, spec, progress)
    pumping = asyncio.create_task(pump())
    stop = asyncio.create_task(services.stopping.wait())
    either: set[asyncio.Future[Any]] = {work, stop}
    try:
        while not work.done():
            await asyncio.wait(
                either,
                timeout=services.ack_wait / 3,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if stop.done() and not work.done():
                raise _Abandoned  # the thread finishes on its own; its outputs are rewritten by the next try
            await msg.in_progress()
        return work.result()
    finally:
        # Re-asked: a cancel that meets a progress publish's ack is lost in Python 3.11's ``wait_for``, and a
        # plain ``await pumping`` then waited forever (the job never settled).
        for task in (pumping, stop):
            await cancel_and_wait(task, PUMP_STOP_SECONDS)


async def _settle(msg: JobMessage, publish: Awaitable[None]) -> Settlement:
    """Ack once the terminal event is stored; nak when it could not be (the next delivery publishes it)."""
    try:
        await publish
    except EventPublishFailed as exc:
        log.warning("dataset result not stored; job back to the queue", error=str(exc))
        await msg.nak()
        return Settlement.NAK
    await msg.ack()
    return Settlement.ACK
