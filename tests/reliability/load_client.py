"""Load generator, run as its own process: N concurrent watchers over several channels, a steady stream of
creates, and progress events injected on the watched runs' subjects (no worker takes the jobs).

    python -m tests.reliability.load_client --watchers 1000 --seconds 60 --create-rate 10 --channels 10

Settings come from the environment like any client (RAVEN_TRAINING_RUN_ADDR, RAVEN_TRAINED_MODEL_ADDR,
RAVEN_JWT_SECRET, RAVEN_NATS_URL). Prints one JSON object: counts, errors, latency percentiles (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

import nats

from common.auth import USER_PERMISSIONS, mint_token
from common.client import RavenClient
from common.client.retry import RetryPolicy
from common.nats_streams import StreamNames
from common.proto.raven.v1 import events_pb2, types_pb2
from tests.reliability.harness import tiny_run

NAMES = StreamNames()


@dataclass
class Watcher:
    run: str
    progress_seqs: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    first_event: asyncio.Event = field(default_factory=asyncio.Event)
    terminal: bool = False
    error: str = ""


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"n": len(values), "p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": at(1.0),
            "mean": round(statistics.fmean(values) * 1000, 2)}  # fmt: skip


async def watch(client: RavenClient, watcher: Watcher) -> None:
    try:
        async for response in client.watch(watcher.run):
            watcher.first_event.set()
            event = response.event
            if event.WhichOneof("payload") == "progress":
                watcher.progress_seqs.append(event.sequence)
                watcher.latencies.append(time.time() - event.time.ToNanoseconds() / 1e9)
            elif event.WhichOneof("payload") == "state_changed" and event.state_changed.to_state in (
                types_pb2.CANCELLED, types_pb2.SUCCEEDED, types_pb2.FAILED,
            ):  # fmt: skip
                watcher.terminal = True
    except Exception as exc:  # every failure is counted: zero is the goal
        watcher.error = f"{type(exc).__name__}: {exc}"
    finally:
        watcher.first_event.set()


async def main(args: argparse.Namespace) -> dict[str, object]:
    token = mint_token("load", USER_PERMISSIONS, secret=os.environ["RAVEN_JWT_SECRET"], ttl_seconds=3600)
    retry = RetryPolicy(max_attempts=3)
    addrs = os.environ["RAVEN_TRAINING_RUN_ADDR"], os.environ["RAVEN_TRAINED_MODEL_ADDR"]
    clients = [RavenClient(*addrs, token=token, retry=retry, timeout=30) for _ in range(args.channels)]
    runs = [(await clients[0].create_run(tiny_run(f"watched-{i}", epochs=1))).name for i in range(args.runs)]
    watchers = [Watcher(runs[i % len(runs)]) for i in range(args.watchers)]
    tasks = [asyncio.create_task(watch(clients[i % len(clients)], w)) for i, w in enumerate(watchers)]
    t0 = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(w.first_event.wait() for w in watchers)), 120)
    connect_seconds = time.monotonic() - t0

    create_latencies: list[float] = []
    create_errors: list[str] = []
    published: dict[str, int] = dict.fromkeys(runs, 0)
    stop = asyncio.Event()

    async def create_one(i: int) -> None:
        started = time.monotonic()
        try:
            await clients[i % len(clients)].create_run(tiny_run(f"load-{i}", epochs=1))
            create_latencies.append(time.monotonic() - started)
        except Exception as exc:
            create_errors.append(f"{type(exc).__name__}: {exc}")

    async def creates() -> int:
        pending, i, start = set(), 0, time.monotonic()
        while not stop.is_set():
            pending.add(asyncio.create_task(create_one(i)))
            i += 1
            await asyncio.sleep(max(0.0, start + i / args.create_rate - time.monotonic()))
        await asyncio.gather(*pending)
        return i

    nc = await nats.connect(os.environ["RAVEN_NATS_URL"])
    js = nc.jetstream()

    async def inject() -> None:
        interval, n, start = 1.0 / args.event_rate, 0, time.monotonic()
        while not stop.is_set():
            for run in runs:
                run_id = run.split("/", 1)[1]
                event = events_pb2.RunEvent(run_id=run_id, attempt=1)
                event.time.GetCurrentTime()
                event.progress.progress.phase = types_pb2.TRAINING
                event.progress.progress.iter = n + 1
                await js.publish(NAMES.run_events_subject(run_id), event.SerializeToString())
                published[run] += 1
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))

    load_start = time.monotonic()
    creator = asyncio.create_task(creates())
    injector = asyncio.create_task(inject())
    await asyncio.sleep(args.seconds)
    stop.set()
    created = await creator
    await injector
    load_seconds = time.monotonic() - load_start
    await asyncio.sleep(1)  # the last injected events reach the watchers before the terminal event
    for run in runs:
        await clients[0].cancel_run(run)
    _, still = await asyncio.wait(tasks, timeout=120)
    await nc.close()
    for client in clients:
        await client.close()

    watch_errors = [w.error for w in watchers if w.error]
    incomplete = [w for w in watchers if not w.error and not w.terminal]
    gaps = [
        w for w in watchers
        if len(w.progress_seqs) != published[w.run] or len(set(w.progress_seqs)) != len(w.progress_seqs)
    ]  # fmt: skip
    latencies = [lat for w in watchers for lat in w.latencies]
    errors = create_errors + watch_errors
    errors += [f"watcher of {w.run} ended without the terminal event" for w in incomplete]
    errors += [f"watcher of {w.run}: {len(w.progress_seqs)} of {published[w.run]} events" for w in gaps]
    errors += [f"{len(still)} watchers still open 120 s after the cancels"] if still else []
    return {
        "watchers": args.watchers, "channels": args.channels, "watched_runs": args.runs,
        "seconds": round(load_seconds, 1), "connect_seconds": round(connect_seconds, 2),
        "creates": created, "create_rate": round(created / load_seconds, 2),
        "events_published": sum(published.values()), "events_delivered": len(latencies),
        "create_ms": percentiles(create_latencies), "event_to_watcher_ms": percentiles(latencies),
        "errors": len(errors), "error_samples": errors[:10],
    }  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--create-rate", type=float, default=5, help="creates per second")
    parser.add_argument(
        "--event-rate", type=float, default=1, help="progress events per second per watched run"
    )
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--runs", type=int, default=20, help="runs the watchers are spread over")
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps(result))
    sys.exit(1 if result["errors"] else 0)
