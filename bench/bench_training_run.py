"""training_run benchmark (not a test): prints one table, each figure beside its target and the machine's
limit measured in the same run.

    .venv/bin/python bench/bench_training_run.py [--skip-postgres] [--runs 100000]

Everything runs as it would deployed, each part in its own process: nats-server, the real training_run
server (``python -m services.training_run``, default settings: INFO JSON logs), and client processes that use
only the public API (generated stubs, JWTs they mint themselves). The bench process itself plays the worker
(and the trained_model service's "model registered" event) by publishing RunEvents to NATS, with each progress
snapshot's ``update_time`` set when it is published. The limits come from bare ``grpc.aio`` servers
(training_run_bare.py) called by the same client processes: one returning the real server's own serialized
responses, one fanning out already serialized WatchTrainingRun responses from a NATS subject.

1. GetTrainingRun RPC/s, 4 client processes x 16 callers, real and bare server alternately, two rounds.
2. ListTrainingRuns: page of 50 over N runs (SQLite, then PostgreSQL), filtered on state and owner.
3. 1,000 WatchTrainingRun streams (4 client processes): every event of a run (2 epochs, the last progress of
   each epoch, evaluation, completion, the terminal state), ``update_time`` → receipt; then the bare fan-out.
4. Load: 1,000 watchers of a run while 10 CreateTrainingRun/s come in; Create latency idle and under load.
PostgreSQL: ``RAVEN_TEST_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/test), a fresh database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import training_run_clients as clients  # noqa: E402
from training_run_parts import Harness, fmt_ms, pct, postgres_database  # noqa: E402
from training_run_report import Table, play_run, watch_stats  # noqa: E402

from common.nats_launcher import start_local_nats  # noqa: E402
from common.proto.raven.v1 import training_run_pb2 as pb  # noqa: E402
from common.proto.raven.v1 import types_pb2  # noqa: E402

GET_PROCS, GET_CALLERS, GET_SECONDS = 4, 16, 4.0


async def bench_get(h: Harness, table: Table, name: str) -> None:
    request = pb.GetTrainingRunRequest(name=name).SerializeToString()
    rates: dict[str, list[float]] = {"real": [], "bare": []}
    p99: dict[str, list[float]] = {"real": [], "bare": []}
    cpu: dict[str, list[float]] = {"real": [], "bare": []}
    for _ in range(2):
        for label, address in (("real", h.address), ("bare", h.bare_address)):
            results = await h.unary(address, "get", request, GET_PROCS, GET_CALLERS, GET_SECONDS)
            rates[label].append(sum(r[0] for r in results))
            p99[label].append(pct([v for r in results for v in r[1]], 0.99))
            cpu[label].append(h.cpu_per_call)
            h.errors += sum(r[2] for r in results)
    ratios = [r / b for r, b in zip(rates["real"], rates["bare"], strict=True)]
    where = f"{GET_PROCS} client proc x {GET_CALLERS} callers, 2 rounds"
    table.add(
        f"GetTrainingRun RPC/s ({where})",
        " / ".join(f"{v:.0f}" for v in rates["real"]),
        "",
        "bare " + " / ".join(f"{v:.0f}" for v in rates["bare"]),
    )
    table.add("GetTrainingRun ÷ bare, per round", " / ".join(f"{v:.2f}" for v in ratios), ">= 0.9", "",
              min(ratios) >= 0.9)  # fmt: skip
    table.add(
        "GetTrainingRun server CPU per call (all server processes)",
        " / ".join(f"{v * 1e6:.0f} us" for v in cpu["real"]),
        "",
        "bare " + " / ".join(f"{v * 1e6:.0f} us" for v in cpu["bare"]),
    )
    table.add(
        "GetTrainingRun p99 latency under that load",
        " / ".join(fmt_ms(v) for v in p99["real"]),
        "",
        "bare " + " / ".join(fmt_ms(v) for v in p99["bare"]),
    )


async def bench_list(h: Harness, table: Table, address: str, bare: bool, where: str) -> None:
    """The same first page again and again (the owner's newest runs: a dashboard), then every page of another
    owner once (each page read for the first time since the server started)."""
    request = pb.ListTrainingRunsRequest(page_size=50, states=[types_pb2.SUCCEEDED], owner="bench-owner-3")
    found = await h.unary(address, "list", request.SerializeToString(), 1, 1, 3.0, subject="bench-owner-3")
    latencies = found[0][1]
    h.errors += found[0][2]
    limit = ""
    if bare:
        bare_found = await h.unary(
            h.bare_address, "list", request.SerializeToString(), 1, 1, 3.0, subject="bench-owner-3"
        )
        limit = f"bare {fmt_ms(pct(bare_found[0][1], 0.5))} / {fmt_ms(pct(bare_found[0][1], 0.99))}"
    table.add(
        f"ListTrainingRuns p50 / p99, {where} (page of 50, state + owner, 1 caller)",
        f"{fmt_ms(pct(latencies, 0.5))} / {fmt_ms(pct(latencies, 0.99))}",
        "p99 <= 10 ms",
        limit,
        pct(latencies, 0.99) <= 0.010,
    )
    request.owner = "bench-owner-4"
    pages = await h.unary(address, "pages", request.SerializeToString(), 1, 1, 0, subject="bench-owner-4")
    latencies = pages[0][1]
    table.add(
        f"  every page of one owner once ({len(latencies)} pages, each read for the first time): p50 / p99",
        f"{fmt_ms(pct(latencies, 0.5))} / {fmt_ms(pct(latencies, 0.99))}",
        "",
        "",
    )


async def bench_watch(h: Harness, table: Table) -> None:
    run = await h.running_run()
    result = await h.watch(h.address, run.name, lambda: play_run(h.real_sender(run), epochs=2, iters=6))
    stats = watch_stats(*result)
    bare = await h.watch(h.bare_address, "trainingRuns/bare",
                         lambda: play_run(h.bare_sender(run), epochs=2, iters=6))  # fmt: skip
    bare_stats = watch_stats(*bare)
    where = f"{clients.WATCHERS} streams, {clients.WATCH_PROCS} client proc"
    table.add(
        f"progress update_time → receipt p50 / p99 / max ({where}, all events)",
        stats.summary(),
        "p99 <= 50 ms",
        "bare fan-out " + bare_stats.summary(),
        stats.p99 <= 0.050,
    )
    for tag, what in (("epoch_last", "last progress of an epoch"), ("run_last", "last progress of the run"),
                      ("terminal", "terminal state (its time → receipt)")):  # fmt: skip
        table.add(f"  {what}: p99", fmt_ms(stats.tag_p99(tag)), "<= 50 ms",
                  "bare " + fmt_ms(bare_stats.tag_p99(tag)), stats.tag_p99(tag) <= 0.050)  # fmt: skip
    table.add("  one event, first → last of the watchers: p50 / max", stats.spread(), "",
              "bare " + bare_stats.spread())  # fmt: skip
    table.add("  deliveries received / expected; stream errors", stats.completeness(), "all; 0", "",
              stats.complete)  # fmt: skip


async def bench_load(h: Harness, table: Table) -> None:
    idle = await h.creates(clients.CreateLoad(h.address, h.secret, 10, 5, h.versions[h.address]))
    run = await h.running_run()
    creates = clients.CreateLoad(h.address, h.secret, 10, 8, h.versions[h.address])
    result = await h.watch(
        h.address, run.name, lambda: play_run(h.real_sender(run), epochs=3, iters=8), creates
    )
    stats = watch_stats(*result[:3])
    latencies, errors = result[3]
    table.add(
        "Load (1,000 watchers + 10 creates/s): Create p50 / p99",
        f"{fmt_ms(pct(latencies, 0.5))} / {fmt_ms(pct(latencies, 0.99))} ({len(latencies)} calls)",
        "p99 <= 100 ms",
        f"idle {fmt_ms(pct(idle[0], 0.5))} / {fmt_ms(pct(idle[0], 0.99))}",
        pct(latencies, 0.99) <= 0.100,
    )
    table.add("Load: event → watcher p50 / p99 / max", stats.summary(), "p99 <= 150 ms", "",
              stats.p99 <= 0.150)  # fmt: skip
    failures = len(errors) + len(idle[1]) + stats.errors
    table.add("Load: errors (creates, streams), deliveries", f"{failures}, {stats.completeness()}", "0", "",
              failures == 0 and stats.complete)  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    table = Table()
    table.machine()
    with tempfile.TemporaryDirectory() as tmp:
        nats_server = start_local_nats(Path(tmp) / "nats", log_file=Path(tmp) / "nats.log")
        h = Harness(Path(tmp), nats_server.url, args.server_procs)
        try:
            await h.start()
            template = await h.create_template()
            started = time.perf_counter()
            await h.populate(h.database_url, template, args.runs)
            table.note(f"{args.runs} runs copied into SQLite in {time.perf_counter() - started:.1f} s")
            await h.start_bare(template)
            table.note(
                f"response sizes: Get {h.sizes['GetTrainingRun']} B, List {h.sizes['ListTrainingRuns']} B"
            )
            parts = {
                "get": lambda: bench_get(h, table, template),
                "list": lambda: bench_list(h, table, h.address, True, f"SQLite, {args.runs} runs"),
                "watch": lambda: bench_watch(h, table),
                "load": lambda: bench_load(h, table),
            }
            for part, run in parts.items():
                if not args.only or part in args.only:
                    with h.profiled(args.profile, part):
                        await run()
            if not args.skip_postgres and (not args.only or "list" in args.only):
                async with postgres_database() as url:
                    if url is None:
                        table.note("PostgreSQL: not reachable, List not measured there")
                    else:
                        address = await h.start_server(url, prefix="benchpg")
                        await h.populate(url, await h.create_template(address), args.runs)
                        await bench_list(h, table, address, False, f"PostgreSQL, {args.runs} runs")
                        await h.stop_last_server()
        except BaseException:
            for log in sorted(Path(tmp).glob("server-*.log")):
                print(f"--- {log.name} (last lines)", file=sys.stderr)
                print("\n".join(log.read_text(errors="replace").splitlines()[-15:]), file=sys.stderr)
            raise
        finally:
            await h.close()
            nats_server.stop()
    table.machine(after=True)
    table.print()
    if args.save:
        args.save.write_text(json.dumps(table.rows, indent=1))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the database for List")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--server-procs", type=int, default=1, help="training_run processes (SO_REUSEPORT)")
    parser.add_argument(
        "--only", nargs="*", choices=("get", "list", "watch", "load"), help="these parts only"
    )
    parser.add_argument("--profile", type=Path, help="py-spy (on PATH) records the server per part into DIR")
    parser.add_argument("--save", type=Path, help="also write the table as JSON")
    return parser.parse_args()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main(parse_args()))
