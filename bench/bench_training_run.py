"""training_run benchmark (not a test): prints a table.

    .venv/bin/python bench/bench_training_run.py [--save after.json] [--before before.json]

Embedded setup in a temp dir: own nats-server, SQLite, the real gRPC server on a free port in this process.
1. Create → job visible to a pull consumer (p50/p99), with the Create RPC latency alone (client in-process).
2. GetTrainingRun RPC/s and latency, clients in separate processes (1 caller; 1, 2 and 4 processes of callers
   on one channel each, all started together).
3. progress event published (here) → received by each of 1,000 WatchTrainingRun streams opened by separate
   client processes over a few channels (p50/p99 of publish → receipt, same host clock).

Before/after: run this script on the old commit with ``--save before.json`` (from a ``git worktree``), then
here with ``--before before.json``. The CPUs may be shared with other work: compare runs made back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
GET_LOADS = ((1, 1), (1, 32), (2, 32), (4, 16))  # (client processes, concurrent callers in each)
WATCH_LOADS = ((1, 4), (2, 2))  # (client processes, channels in each): 1,000 streams in all


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--save", type=Path, help="write the results as JSON (e.g. run on the old commit)")
    parser.add_argument("--only", choices=("create", "get", "watch"), help="run one part")
    parser.add_argument("--before", type=Path, help="results saved earlier: print them as a 'before' column")
    return parser.parse_args()


async def main(save: Path | None, before: Path | None, only: str | None) -> None:
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
            if only in (None, "create"):
                rows += await bench_create(app, stub, user)
            if only in (None, "get"):
                rows += await bench_get(app, stub, user)
            for processes, channels in WATCH_LOADS if only in (None, "watch") else ():
                rows += await bench_watchers(app, stub, user, worker, processes, channels)
            await channel.close()
        finally:
            await app.close()
            nats_server.stop()
    if save is not None:
        save.write_text(json.dumps(dict(rows), indent=1))
    print_table(rows, json.loads(before.read_text()) if before is not None else {})


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
    return [
        ("Create RPC p50 / p99 (200 runs)", f"{ms(pct(rpc, 0.5))} / {ms(pct(rpc, 0.99))}"),
        ("Create → job pulled p50 / p99", f"{ms(pct(end_to_end, 0.5))} / {ms(pct(end_to_end, 0.99))}"),
    ]


def _get_load(address: str, name: str, auth: str, start_at: float, seconds: float, callers: int) -> GetResult:
    """Client side of the Get benchmark, in its own process so that it does not share the server's event loop.

    Calls start at the wall-clock ``start_at`` (so that several client processes overlap) and run ``seconds``.
    """

    async def run() -> GetResult:
        channel = grpc.aio.insecure_channel(address)
        stub = training_run_pb2_grpc.TrainingRunServiceStub(channel)
        get = pb.GetTrainingRunRequest(name=name)
        metadata = (("authorization", auth),)
        await stub.GetTrainingRun(get, metadata=metadata)  # connect, and check that the call works
        await asyncio.sleep(max(0.0, start_at - time.time()))
        latencies: list[float] = []
        begin = time.perf_counter()
        stop = begin + seconds

        async def caller() -> None:
            while True:
                started = time.perf_counter()
                if started >= stop:
                    return
                await stub.GetTrainingRun(get, metadata=metadata)
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(caller() for _ in range(callers)))
        elapsed = time.perf_counter() - begin
        await channel.close()
        return GetResult(len(latencies) / elapsed, latencies)

    return asyncio.run(run())


@dataclass
class GetResult:
    rate: float
    latencies: list[float]


async def bench_get(
    app: bootstrap.App, stub: training_run_pb2_grpc.TrainingRunServiceStub, user: tuple[tuple[str, str], ...]
) -> list[tuple[str, str]]:
    run = await stub.CreateTrainingRun(request(10_000), metadata=user)
    rows = []
    loop = asyncio.get_running_loop()
    for processes, callers in GET_LOADS:
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            start_at = time.time() + 3 + processes  # every client process started and connected
            results = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        pool, _get_load, f"127.0.0.1:{app.port}", run.name, user[0][1], start_at, 5.0, callers
                    )
                    for _ in range(processes)
                )
            )
        latencies = [v for r in results for v in r.latencies]
        rate = sum(r.rate for r in results)
        rows.append(
            (
                f"GetTrainingRun RPC/s, {processes} client proc x {callers} callers (p50 / p99)",
                f"{rate:.0f} ({ms(pct(latencies, 0.5))} / {ms(pct(latencies, 0.99))})",
            )
        )
    return rows


def _watch_load(
    address: str, name: str, auth: str, watchers: int, channels: int, events: int, ready: Any, results: Path
) -> None:
    """Client side of the watcher benchmark (own process): ``watchers`` streams spread over ``channels``.

    Puts the number of streams that saw the replayed RUNNING transition on ``ready``, then writes every
    progress event's publish → receipt latency as JSON to the file ``results`` and puts again. The parent
    reads the file and kills the process: with 1,000 finished streams, ``asyncio.run``'s clean-up may not
    return.
    """

    async def run() -> None:
        opened = [grpc.aio.insecure_channel(address) for _ in range(channels)]
        stubs = [training_run_pb2_grpc.TrainingRunServiceStub(c) for c in opened]
        metadata = (("authorization", auth),)
        latencies: list[float] = []
        caught_up = 0
        all_ready = asyncio.Event()

        async def watcher(stub: training_run_pb2_grpc.TrainingRunServiceStub) -> None:
            nonlocal caught_up
            counted = False
            watch = pb.WatchTrainingRunRequest(name=name)
            async for response in stub.WatchTrainingRun(watch, metadata=metadata):
                kind = response.event.WhichOneof("payload")
                if kind == "state_changed" and response.event.state_changed.to_state == types_pb2.RUNNING:
                    if not counted:
                        counted = True
                        caught_up += 1
                        if caught_up == watchers:
                            all_ready.set()
                elif kind == "progress":
                    latencies.append(time.time() - response.event.time.ToNanoseconds() / 1e9)
                    if response.event.progress.progress.iter == events:
                        return

        tasks = [asyncio.create_task(watcher(stubs[i % channels])) for i in range(watchers)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_ready.wait(), 120)
        ready.put(caught_up)
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
        results.write_text(json.dumps(latencies))  # before closing: see the docstring
        ready.put(0)
        for channel in opened:
            await channel.close()

    try:
        asyncio.run(run())
    except BaseException as exc:
        ready.put(0)
        results.write_text(json.dumps(f"client process failed: {exc!r}"))
        raise


async def bench_watchers(
    app: bootstrap.App,
    stub: training_run_pb2_grpc.TrainingRunServiceStub,
    user: tuple[tuple[str, str], ...],
    worker: tuple[tuple[str, str], ...],
    processes: int,
    channels: int,
) -> list[tuple[str, str]]:
    run = await stub.CreateTrainingRun(request(20_000 + processes), metadata=user)
    run_id = run.name.split("/")[1]
    await stub.ClaimTrainingRun(
        pb.ClaimTrainingRunRequest(name=run.name, worker_id="w", job_attempt=1), metadata=worker
    )
    await asyncio.sleep(0.5)
    events = 20
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    files = [Path(tempfile.mkstemp(suffix=".json")[1]) for _ in range(processes)]
    clients = [
        context.Process(
            target=_watch_load,
            args=(
                f"127.0.0.1:{app.port}",
                run.name,
                user[0][1],
                WATCHERS // processes,
                channels,
                events,
                ready,
                file,
            ),
        )
        for file in files
    ]
    for client in clients:
        client.start()
    loop = asyncio.get_running_loop()
    connected = sum([await loop.run_in_executor(None, ready.get, True, 180) for _ in clients])
    subscriptions = app.feeds.subscriptions
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
    latencies: list[float] = []
    for _ in clients:  # each puts again once its file is written
        await loop.run_in_executor(None, ready.get, True, 180)
    for client, file in zip(clients, files, strict=True):
        client.kill()
        client.join(10)
        found = json.loads(file.read_text() or '"client process did not finish"')
        file.unlink()
        if isinstance(found, str):
            raise RuntimeError(found)
        latencies += found
    where = f"{processes} client proc x {channels} channels"
    return [
        (f"watchers connected / NATS subscriptions ({where})", f"{connected} / {subscriptions}"),
        (
            f"progress → {WATCHERS} watchers p50 / p99 ({where}, {len(latencies)} deliveries)",
            f"{ms(pct(latencies, 0.5))} / {ms(pct(latencies, 0.99))}",
        ),
    ]


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def print_table(rows: list[tuple[str, str]], before: dict[str, str]) -> None:
    width = max(len(k) for k, _ in rows)
    if not before:
        print(f"\n{'metric'.ljust(width)}  value")
        print(f"{'-' * width}  {'-' * 24}")
        for key, value in rows:
            print(f"{key.ljust(width)}  {value}")
        return
    column = max([len(v) for v in before.values()] + [6])
    print(f"\n{'metric'.ljust(width)}  {'before'.ljust(column)}  after")
    print(f"{'-' * width}  {'-' * column}  {'-' * 24}")
    for key, value in rows:
        print(f"{key.ljust(width)}  {before.get(key, '-').ljust(column)}  {value}")


if __name__ == "__main__":
    args = parse_args()
    asyncio.run(main(args.save, args.before, args.only))
