"""training_run benchmark (not a test): prints a table.

    .venv/bin/python bench/bench_training_run.py

Embedded setup in a temp dir: own nats-server, SQLite, the real gRPC server on a free port, clients in-process.
1. Create → job visible to a pull consumer (p50/p99), with the Create RPC latency alone.
2. GetTrainingRun RPC/s (32 concurrent callers on one channel).
3. progress event published → received by each of 1,000 concurrent WatchTrainingRun streams (p50/p99).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.auth import USER_PERMISSIONS, Permission, mint_token  # noqa: E402
from common.nats_launcher import start_local_nats  # noqa: E402
from common.nats_streams import StreamNames, ensure_worker_consumer  # noqa: E402
from common.proto.raven.v1 import (  # noqa: E402
    events_pb2,
    training_run_pb2_grpc,
    types_pb2,
)
from common.proto.raven.v1 import training_run_pb2 as pb  # noqa: E402
from common.settings import Settings  # noqa: E402
from services.training_run import bootstrap  # noqa: E402

SECRET = "bench-secret"
WATCHERS = 1000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def main() -> None:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        nats_server = start_local_nats(tmp_path / "nats", log_file=tmp_path / "nats.log")
        dataset = tmp_path / "datasets" / "waste"
        dataset.mkdir(parents=True)
        (dataset / "annotations.json").write_text(json.dumps({"categories": [{"id": 1, "name": "bottle"}]}))
        settings = Settings(
            data_dir=tmp_path,
            nats_url=nats_server.url,
            grpc_port=0,
            jwt_secret=SECRET,
            log_json=False,
            log_level="WARNING",
            dataset_root=f"file://{tmp_path / 'datasets'}",
        )
        import logging

        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        app = await bootstrap.build_app(settings, address="127.0.0.1:0", names=StreamNames())
        try:
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
            stub = training_run_pb2_grpc.TrainingRunServiceStub(channel)
            user = (
                ("authorization", f"Bearer {mint_token('bench', list(USER_PERMISSIONS), secret=SECRET)}"),
            )
            worker = (("authorization", f"Bearer {mint_token('w', [Permission.WORKER], secret=SECRET)}"),)
            rows += await bench_create(app, stub, user)
            rows += await bench_get(app, stub, user)
            rows += await bench_watchers(app, stub, user, worker)
            await channel.close()
        finally:
            await app.close()
            nats_server.stop()
    width = max(len(k) for k, _ in rows)
    print(f"\n{'metric'.ljust(width)}  value")
    print(f"{'-' * width}  {'-' * 24}")
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")


def request(i: int) -> pb.CreateTrainingRunRequest:
    return pb.CreateTrainingRunRequest(
        training_run=pb.TrainingRun(
            display_name=f"bench {i}",
            dataset="waste",
            model_template="rtmdet_tiny",
            hyperparameters=types_pb2.Hyperparameters(epochs=2),
        )
    )


async def bench_create(
    app: bootstrap.App, stub: training_run_pb2_grpc.TrainingRunServiceStub, user: tuple[tuple[str, str], ...]
) -> list[tuple[str, str]]:
    js = app.nc.jetstream()
    durable = await ensure_worker_consumer(js, app.names)
    subscription = await js.pull_subscribe_bind(durable, app.names.jobs)
    await stub.CreateTrainingRun(request(-1), metadata=user)  # warm-up: fills the config cache
    for message in await subscription.fetch(1, timeout=5):
        await message.ack()
    end_to_end: list[float] = []
    rpc: list[float] = []
    for i in range(200):
        started = time.perf_counter()
        await stub.CreateTrainingRun(request(i), metadata=user)
        rpc.append(time.perf_counter() - started)
        messages = await subscription.fetch(1, timeout=5)
        end_to_end.append(time.perf_counter() - started)
        for message in messages:
            await message.ack()
    await subscription.unsubscribe()
    ms = lambda v: f"{v * 1000:.1f} ms"  # noqa: E731
    return [
        ("Create RPC p50 / p99 (200 runs)", f"{ms(pct(rpc, 0.5))} / {ms(pct(rpc, 0.99))}"),
        ("Create → job pulled p50 / p99", f"{ms(pct(end_to_end, 0.5))} / {ms(pct(end_to_end, 0.99))}"),
    ]


def _get_load(address: str, name: str, auth: str, seconds: float, callers: int) -> int:
    """Client side of the Get benchmark, in its own process so that it does not share the server's event loop."""

    async def run() -> int:
        channel = grpc.aio.insecure_channel(address)
        stub = training_run_pb2_grpc.TrainingRunServiceStub(channel)
        get = pb.GetTrainingRunRequest(name=name)
        metadata = (("authorization", auth),)
        count = 0
        stop = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal count
            while time.perf_counter() < stop:
                await stub.GetTrainingRun(get, metadata=metadata)
                count += 1

        await asyncio.gather(*(caller() for _ in range(callers)))
        await channel.close()
        return count

    return asyncio.run(run())


async def bench_get(
    app: bootstrap.App, stub: training_run_pb2_grpc.TrainingRunServiceStub, user: tuple[tuple[str, str], ...]
) -> list[tuple[str, str]]:
    run = await stub.CreateTrainingRun(request(10_000), metadata=user)
    seconds = 5.0
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        started = time.perf_counter()
        count = await asyncio.get_running_loop().run_in_executor(
            pool, _get_load, f"127.0.0.1:{app.port}", run.name, user[0][1], seconds, 32
        )
        elapsed = time.perf_counter() - started
    return [
        ("GetTrainingRun RPC/s (32 callers in a client process, 5 s)", f"{count / seconds:.0f}"),
        ("  incl. client process start-up", f"{count / elapsed:.0f}"),
    ]


async def bench_watchers(
    app: bootstrap.App,
    stub: training_run_pb2_grpc.TrainingRunServiceStub,
    user: tuple[tuple[str, str], ...],
    worker: tuple[tuple[str, str], ...],
) -> list[tuple[str, str]]:
    run = await stub.CreateTrainingRun(request(20_000), metadata=user)
    run_id = run.name.split("/")[1]
    await stub.ClaimTrainingRun(
        pb.ClaimTrainingRunRequest(name=run.name, worker_id="w", job_attempt=1), metadata=worker
    )
    await asyncio.sleep(0.5)
    latencies: list[float] = []
    ready = 0
    events = 20

    async def watcher() -> None:
        nonlocal ready
        counted = False
        async for response in stub.WatchTrainingRun(pb.WatchTrainingRunRequest(name=run.name), metadata=user):
            kind = response.event.WhichOneof("payload")
            if (
                kind == "state_changed"
                and response.event.state_changed.to_state == types_pb2.RUNNING
                and not counted
            ):
                counted = True
                ready += 1
            elif kind == "progress":
                latencies.append(time.time() - response.event.time.ToNanoseconds() / 1e9)
                if response.event.progress.progress.iter == events:
                    return

    tasks = [asyncio.create_task(watcher()) for _ in range(WATCHERS)]
    deadline = time.perf_counter() + 120
    while ready < WATCHERS and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    js = app.nc.jetstream()
    for i in range(1, events + 1):
        event = events_pb2.RunEvent(
            run_id=run_id,
            attempt=1,
            progress=events_pb2.ProgressReported(
                progress=types_pb2.ProgressSnapshot(phase=types_pb2.TRAINING, iter=i, max_iters=events)
            ),
        )
        event.time.GetCurrentTime()
        await js.publish(app.names.run_events_subject(run_id), event.SerializeToString())
        await asyncio.sleep(0.2)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    ms = lambda v: f"{v * 1000:.1f} ms"  # noqa: E731
    return [
        ("watchers connected / NATS subscriptions", f"{ready} / {app.feeds.subscriptions}"),
        (
            f"progress → {WATCHERS} watchers p50 / p99 ({len(latencies)} deliveries)",
            f"{ms(pct(latencies, 0.5))} / {ms(pct(latencies, 0.99))}",
        ),
    ]


if __name__ == "__main__":
    asyncio.run(main())
