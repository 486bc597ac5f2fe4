"""Shared pieces of the fault-injection tests: a real stack (scripts/stack.py) with short leases, tiny runs,
and helpers that read the outcome through the public API (plus the streams, where the tests inject
messages, and training_run's own SQLite file, read-only, where a test must see under the hood).

Scale with ``RAVEN_RELIABILITY_RUNS`` (runs per scenario; small by default so ``make test`` stays short).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from common.auth import USER_PERMISSIONS, mint_token
from common.client import RavenClient
from common.client.retry import RetryPolicy
from common.proto.raven.v1 import datasets_pb2, training_run_pb2, types_pb2
from scripts.stack import Stack
from tests.fixtures.synthetic_coco import make_dataset
from tests.reliability.results import record  # noqa: F401  (the scenarios' recorder: harness.record)

T = TypeVar("T")
TERMINAL = {types_pb2.SUCCEEDED, types_pb2.FAILED, types_pb2.CANCELLED}
FAST_LEASES = {
    "RAVEN_LEASE_SECONDS": "6",
    "RAVEN_HEARTBEAT_SECONDS": "1",
    "RAVEN_REAPER_INTERVAL_SECONDS": "1",
    "RAVEN_PROGRESS_EVERY_ITERS": "1",  # every iteration reported: iterations per attempt can be counted
    "RAVEN_PROGRESS_EVERY_SECONDS": "0",
    "RAVEN_CANCEL_GRACE_SECONDS": "3",
    "RAVEN_LOG_LEVEL": "INFO",
}


def runs_per_scenario(default: int) -> int:
    return int(os.environ.get("RAVEN_RELIABILITY_RUNS", default))


def make_stack(data_dir: Path, *, worker: bool = True, **env: str) -> Stack:
    make_dataset(data_dir / "datasets" / "waste", n_images=12, size=128, seed=5)
    return Stack(data_dir, worker=worker, extra_env={**FAST_LEASES, **env})


def client_for(stack: Stack, *, subject: str = "reliability", max_attempts: int = 30) -> RavenClient:
    env = stack.env()
    token = mint_token(subject, USER_PERMISSIONS, secret=stack.jwt_secret, ttl_seconds=24 * 3600)
    # Patient retries: services and the broker are restarted under the client on purpose.
    retry = RetryPolicy(max_attempts=max_attempts, initial_backoff=0.2, max_backoff=2.0)
    return RavenClient(
        env["RAVEN_TRAINING_RUN_ADDR"], env["RAVEN_TRAINED_MODEL_ADDR"], token=token, retry=retry
    )


def tiny_run(name: str, epochs: int = 3, max_attempts: int = 5) -> training_run_pb2.TrainingRun:
    return training_run_pb2.TrainingRun(
        display_name=name,
        dataset="waste",
        model_template="rtmdet_tiny",
        hyperparameters=types_pb2.Hyperparameters(
            epochs=epochs, batch_size=4, image_size=128, val_interval=1, seed=1, max_attempts=max_attempts
        ),
    )


async def create(client: RavenClient, name: str, **kwargs: Any) -> training_run_pb2.TrainingRun:
    return await client.create_run(tiny_run(f"{name}-{uuid.uuid4().hex[:6]}", **kwargs))


async def version_ready(client: RavenClient, within: float = 120) -> None:
    """Makes the dataset's implicit version READY, so that runs created later reuse it and are queued at
    once (a scenario that takes NATS away before its create would otherwise leave the run waiting)."""
    warm = await create(client, "warm-up")
    try:

        async def ready() -> bool:
            version = await client.get_dataset_version(warm.dataset_version)
            return version.state == datasets_pb2.DATASET_VERSION_STATE_READY

        await eventually(ready, within, f"{warm.dataset_version} to be READY")
    finally:
        await client.cancel_run(warm.name)


async def eventually(
    probe: Callable[[], Awaitable[T | None]], within: float, what: str, interval: float = 0.2
) -> T:
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_terminal(client: RavenClient, name: str, within: float = 600) -> training_run_pb2.TrainingRun:
    async def probe() -> training_run_pb2.TrainingRun | None:
        run = await client.get_run(name)
        return run if run.state in TERMINAL else None

    return await eventually(probe, within, f"{name} to end", interval=0.5)


async def models_of(client: RavenClient, run_name: str) -> list[Any]:
    return [m async for m in client.iter_models(page_size=500) if m.training_run == run_name]


async def replay(client: RavenClient, name: str) -> list[training_run_pb2.WatchTrainingRunResponse]:
    """Every stored event of a finished run, from resume token 0."""
    return [response async for response in client.watch(name)]


def kind(response: training_run_pb2.WatchTrainingRunResponse) -> str:
    return response.event.WhichOneof("payload") or ""


@dataclass
class AttemptTrace:
    """What the events say about one attempt of a run."""

    attempt: int
    resumed_from: str = ""
    iters: list[int] = field(default_factory=list)  # progress iterations in TRAINING, in order
    max_iters: int = 0
    phases: list[int] = field(default_factory=list)


def attempts_of(events: list[training_run_pb2.WatchTrainingRunResponse]) -> dict[int, AttemptTrace]:
    traces: dict[int, AttemptTrace] = {}
    for response in events:
        event = response.event
        trace = traces.setdefault(event.attempt, AttemptTrace(event.attempt))
        match kind(response):
            case "started":
                trace.resumed_from = event.started.resumed_from
            case "phase_changed":
                trace.phases.append(event.phase_changed.phase)
            case "progress":
                snapshot = event.progress.progress
                if snapshot.phase == types_pb2.TRAINING and snapshot.iter:
                    trace.iters.append(snapshot.iter)
                    trace.max_iters = max(trace.max_iters, snapshot.max_iters)
    return traces


def sequences(events: list[training_run_pb2.WatchTrainingRunResponse]) -> list[int]:
    return [r.event.sequence for r in events]


def stored_row(stack: Stack, table: str, column: str, run_id: str) -> Any:
    """One column of training_run's own row for a run, read-only (a test's look under the hood)."""
    import sqlite3

    db = sqlite3.connect(f"file:{stack.data_dir / 'training_run.db'}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute(f"SELECT {column} FROM {table} WHERE id = ?", (run_id,)).fetchone()
    finally:
        db.close()
    return row[0] if row else None


def run_id(name: str) -> str:
    return name.split("/", 1)[1]


def worker_process(stack: Stack, worker_id: str) -> str:
    return "trainer_worker" if worker_id == "demo-worker-1" else f"trainer_worker-{worker_id}"


async def raw_watch(
    client: RavenClient,
    name: str,
    out: list[training_run_pb2.WatchTrainingRunResponse],
    *,
    give_up: float = 600,
) -> int:
    """A watcher without the client's own duplicate filter: reconnects with the last resume token after any
    error or early end, records every response as received; returns how many times it reconnected."""
    import grpc

    token, reconnects = "", 0
    deadline = time.monotonic() + give_up
    stub = client._runs  # the raw stub: server-side duplicates must not be hidden by RavenClient.watch
    while time.monotonic() < deadline:
        request = training_run_pb2.WatchTrainingRunRequest(name=name, resume_token=token)
        call = stub.WatchTrainingRun(request, metadata=client.metadata())
        try:
            async for response in call:
                out.append(response)
                token = response.resume_token or token
                if kind(response) == "state_changed" and response.event.state_changed.to_state in TERMINAL:
                    return reconnects
        except grpc.aio.AioRpcError:
            pass
        finally:
            call.cancel()
        reconnects += 1
        await asyncio.sleep(0.3)
    raise AssertionError(f"raw watcher of {name} never saw the terminal event")


def outbox_rows(stack: Stack, run_id: str) -> list[tuple[str, Any]]:
    """(kind, sent_time) of training_run's outbox rows for a run, read-only."""
    import sqlite3

    db = sqlite3.connect(f"file:{stack.data_dir / 'training_run.db'}?mode=ro", uri=True, timeout=10)
    try:
        query = "SELECT kind, sent_time FROM training_run_outbox WHERE run_id = ? ORDER BY id"
        return list(db.execute(query, (run_id,)).fetchall())
    finally:
        db.close()


def log_lines(stack: Stack, prefix: str, *needles: str) -> list[str]:
    """Lines of the named processes' logs (e.g. every ``trainer_worker*``) that contain every needle."""
    found = []
    for path in sorted((stack.data_dir / "logs").glob(f"{prefix}*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if all(needle in line for needle in needles):
                found.append(line)
    return found
