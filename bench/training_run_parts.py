"""Parts of bench_training_run.py: the processes it starts, the worker it plays, statistics, the table."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import nats
import training_run_bare as bare
import training_run_clients as clients
import training_run_dataset
import training_run_list
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.auth import Permission, mint_token
from common.nats_launcher import free_port
from common.nats_streams import StreamNames
from common.proto.raven.v1 import events_pb2, training_run_pb2_grpc, types_pb2
from common.proto.raven.v1 import training_run_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret"
BARE_SUBJECT = "bench.bare.watch"
Sender = Callable[[events_pb2.RunEvent], Awaitable[int]]  # publishes one event, returns its sequence
POSTGRES_ADMIN_URL = os.environ.get("RAVEN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (all their threads) so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def fmt_ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


class Harness:
    """The processes of one benchmark run, and the bench's own NATS connection (it plays the worker)."""

    def __init__(self, tmp: Path, nats_url: str, server_procs: int) -> None:
        self.tmp = tmp
        self.nats_url = nats_url
        self.server_procs = server_procs
        self.secret = SECRET
        self.database_url = f"sqlite+aiosqlite:///{tmp / 'training_run.db'}"
        self.ctx = multiprocessing.get_context("spawn")
        self.servers: list[subprocess.Popen[bytes]] = []
        self.ports: dict[int, str] = {}  # server pid → its address
        self.cpu_per_call = 0.0
        self.bare_process: Any = None
        self.errors = 0
        self.user = (("authorization", clients.user_token(SECRET)),)
        worker_token = mint_token("bench-worker", [Permission.WORKER], secret=SECRET)
        self.worker = (("authorization", f"Bearer {worker_token}"),)
        self.versions: dict[str, str] = {}  # server address → the READY dataset version its runs train on
        training_run_dataset.write_dataset(tmp / "datasets" / "waste")

    async def start(self) -> None:
        self.nc = await nats.connect(self.nats_url)
        self.js = self.nc.jetstream()
        self.address = await self.start_server(self.database_url, prefix="raven", processes=self.server_procs)

    async def start_server(self, database_url: str, prefix: str, processes: int = 1) -> str:
        """``processes`` servers of training_run on one port (gRPC binds with SO_REUSEPORT)."""
        port = free_port()
        env = os.environ | {
            "RAVEN_DATA_DIR": str(self.tmp / prefix), "RAVEN_DATABASE_URL": database_url,
            "RAVEN_NATS_URL": self.nats_url, "RAVEN_GRPC_PORT": str(port), "RAVEN_JWT_SECRET": SECRET,
            "RAVEN_DATASET_ROOT": f"file://{self.tmp / 'datasets'}", "RAVEN_SUBJECT_PREFIX": prefix,
            "RAVEN_ARTIFACT_ROOT": f"file://{self.tmp / prefix / 'artifacts'}",
            "RAVEN_JOBS_STREAM": f"{prefix.upper()}_JOBS",
            "RAVEN_EVENTS_STREAM": f"{prefix.upper()}_RUN_EVENTS",
        }  # fmt: skip
        log = open(self.tmp / f"server-{prefix}.log", "ab")  # noqa: ASYNC230 (the servers write it)
        address = f"127.0.0.1:{port}"
        for _ in range(processes):
            self.servers.append(subprocess.Popen(  # noqa: ASYNC220 (starts at once)
                [sys.executable, "-m", "services.training_run"], cwd=ROOT, env=env, stdout=log, stderr=log
            ))  # fmt: skip
            self.ports[self.servers[-1].pid] = address
        await _wait_serving(address, self.tmp / f"server-{prefix}.log")
        if processes > 1:
            await asyncio.sleep(3)  # the others bind too
        names = StreamNames(jobs=env["RAVEN_JOBS_STREAM"], events=env["RAVEN_EVENTS_STREAM"], prefix=prefix)
        dataset, artifacts = f"{env['RAVEN_DATASET_ROOT']}/waste", env["RAVEN_ARTIFACT_ROOT"]
        self.versions[address] = await training_run_dataset.prepared_version(
            address, self.user, self.nc, names, dataset, artifacts
        )
        return address

    def stub(self, address: str | None = None) -> training_run_pb2_grpc.TrainingRunServiceStub:
        return training_run_pb2_grpc.TrainingRunServiceStub(
            grpc.aio.insecure_channel(address or self.address)
        )

    async def create_template(self, address: str | None = None) -> str:
        """A run created through the API; its row is the template of the List data."""
        request = clients.create_request(0, self.versions[address or self.address])
        run = await self.stub(address).CreateTrainingRun(request, metadata=self.user)
        return run.name

    async def populate(self, database_url: str, template: str, count: int) -> None:
        await training_run_list.populate(database_url, template.split("/")[1], count)

    async def start_bare(self, template: str) -> None:
        """The bare server, answering with the real server's own serialized responses."""
        stub = self.stub()
        got = await stub.GetTrainingRun(pb.GetTrainingRunRequest(name=template), metadata=self.user)
        owner = (("authorization", clients.user_token(SECRET, "bench-owner-3")),)
        listed = await stub.ListTrainingRuns(
            pb.ListTrainingRunsRequest(page_size=50, states=[types_pb2.SUCCEEDED], owner="bench-owner-3"),
            metadata=owner,
        )
        unary = {"GetTrainingRun": got.SerializeToString(), "ListTrainingRuns": listed.SerializeToString()}
        self.sizes = {k: len(v) for k, v in unary.items()}
        port_out = self.ctx.Queue()
        self.bare_process = self.ctx.Process(
            target=bare.bare_server, args=(port_out, unary, self.nats_url, BARE_SUBJECT)
        )
        self.bare_process.start()
        self.bare_address = f"127.0.0.1:{await asyncio.to_thread(port_out.get, True, 60)}"

    async def running_run(self) -> pb.TrainingRun:
        stub = self.stub()
        request = clients.create_request(1, self.versions[self.address])
        run = await stub.CreateTrainingRun(request, metadata=self.user)
        await stub.ClaimTrainingRun(
            pb.ClaimTrainingRunRequest(name=run.name, worker_id="bench-worker", job_attempt=1),
            metadata=self.worker,
        )
        await asyncio.sleep(0.5)  # the RUNNING transition reaches the stream (outbox relay)
        return await stub.GetTrainingRun(pb.GetTrainingRunRequest(name=run.name), metadata=self.user)

    def real_sender(self, run: pb.TrainingRun) -> Sender:
        subject = f"raven.runs.{run.name.split('/')[1]}.events"

        async def send(event: events_pb2.RunEvent) -> int:
            event.run_id = run.name.split("/")[1]
            return int((await self.js.publish(subject, event.SerializeToString())).seq)

        return send

    def bare_sender(self, run: pb.TrainingRun) -> Sender:
        """What the real server would send, pre-serialized; the run's end is a SUCCEEDED transition, then an
        empty message (the bare server ends the streams)."""
        snapshot = pb.TrainingRun()
        snapshot.CopyFrom(run)
        snapshot.ClearField("resolved_config")
        snapshot.ClearField("resolved_config_data")
        sequence = 0

        async def publish(event: events_pb2.RunEvent) -> int:
            nonlocal sequence
            sequence += 1
            event.sequence = sequence
            if event.WhichOneof("payload") == "progress":
                snapshot.progress.CopyFrom(event.progress.progress)
            response = pb.WatchTrainingRunResponse(
                event=event, resume_token=str(sequence), training_run=snapshot
            )
            await self.nc.publish(BARE_SUBJECT, response.SerializeToString())
            return sequence

        async def send(event: events_pb2.RunEvent) -> int:
            found = await publish(event)
            if event.WhichOneof("payload") == "model_registered":
                end = events_pb2.RunEvent(attempt=1)
                end.state_changed.from_state = types_pb2.RUNNING
                end.state_changed.to_state = types_pb2.SUCCEEDED
                end.time.GetCurrentTime()
                await publish(end)
                await self.nc.publish(BARE_SUBJECT, b"")
            return found

        return send

    async def bare_hello(self) -> None:
        event = events_pb2.RunEvent(attempt=1)  # sequence 0: not counted
        event.state_changed.to_state = types_pb2.RUNNING
        await self.nc.publish(BARE_SUBJECT, pb.WatchTrainingRunResponse(event=event).SerializeToString())

    async def unary(
        self, address: str, method: str, request: bytes, procs: int, callers: int, seconds: float,
        subject: str = "bench",
    ) -> list[tuple[float, list[float], int]]:  # fmt: skip
        """Results per client process; ``self.cpu_per_call`` is the server's CPU time per call meanwhile."""
        out = self.ctx.Queue()
        start_at = time.time() + 2.5 + 0.5 * procs  # every client process started and connected
        load = clients.UnaryLoad(address, method, request, SECRET, start_at, seconds, callers, subject)
        processes = [self.ctx.Process(target=clients.unary_load, args=(load, out)) for _ in range(procs)]
        for process in processes:
            process.start()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        pids = self.server_pids(address)
        cpu = cpu_seconds(pids)
        results = [await asyncio.to_thread(out.get, True, seconds + 120) for _ in processes]
        calls = sum(len(r[1]) for r in results)
        self.cpu_per_call = (cpu_seconds(pids) - cpu) / max(1, calls)
        for process in processes:
            await asyncio.to_thread(process.join, 10)
        return results

    def server_pids(self, address: str) -> list[int]:
        if address == getattr(self, "bare_address", None):
            return [self.bare_process.pid]
        return [s.pid for s in self.servers if s.args and self.ports.get(s.pid) == address]

    async def creates(self, load: clients.CreateLoad) -> tuple[list[float], list[str]]:
        out = self.ctx.Queue()
        process = self.ctx.Process(target=clients.create_load, args=(load, out))
        process.start()
        found: tuple[list[float], list[str]] = await asyncio.to_thread(out.get, True, load.seconds + 120)
        await asyncio.to_thread(process.join, 10)
        return found

    async def watch(
        self, address: str, name: str, play: Callable[[], Awaitable[dict[int, str]]],
        creates: clients.CreateLoad | None = None,
    ) -> tuple[Any, ...]:  # fmt: skip
        ready, out = self.ctx.Queue(), self.ctx.Queue()
        load = clients.WatchLoad(address, name, SECRET, clients.WATCHERS // clients.WATCH_PROCS, 2)
        processes = [
            self.ctx.Process(target=clients.watch_load, args=(load, ready, out))
            for _ in range(clients.WATCH_PROCS)
        ]
        for process in processes:
            process.start()
        connected, reported = 0, 0
        while reported < len(processes):
            if address == getattr(self, "bare_address", None):
                await self.bare_hello()  # the bare server replays nothing: greet until every stream is open
            with contextlib.suppress(Exception):
                connected += await asyncio.to_thread(ready.get, True, 0.5)
                reported += 1
        creator, created = None, self.ctx.Queue()
        if creates is not None:
            creator = self.ctx.Process(target=clients.create_load, args=(creates, created))
            creator.start()
            await asyncio.sleep(1)  # the creator is up and calling
        tags = await play()
        results = [await asyncio.to_thread(out.get, True, 200) for _ in processes]
        for process in processes:
            await asyncio.to_thread(process.join, 10)
        if creator is None:
            return results, tags, connected
        create_result = await asyncio.to_thread(created.get, True, 200)
        await asyncio.to_thread(creator.join, 10)
        return results, tags, connected, create_result

    @contextlib.contextmanager
    def profiled(self, directory: Path | None, part: str) -> Iterator[None]:
        """With ``directory``: py-spy samples the (first) server process while ``part`` runs."""
        if directory is None:
            yield
            return
        directory.mkdir(parents=True, exist_ok=True)
        # --gil: only the thread holding the GIL (idle threads waiting on their queues are not cost);
        # --nonblocking: the server is not paused for each sample
        command = ["py-spy", "record", "-p", str(self.servers[0].pid), "-r", "200", "-f", "raw", "--gil",
                   "--nonblocking"]  # fmt: skip
        spy = subprocess.Popen([*command, "-o", str(directory / f"{part}.txt")], stdout=subprocess.DEVNULL)
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)

    async def stop_last_server(self) -> None:
        """Stops the last server started (before its database is dropped)."""
        await _stop(self.servers.pop())

    async def close(self) -> None:
        if self.bare_process is not None:
            self.bare_process.terminate()
            self.bare_process.join(10)
        await asyncio.gather(*(_stop(server) for server in self.servers))
        if hasattr(self, "nc"):
            await self.nc.close()


async def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        await asyncio.to_thread(server.wait, 30)
    except subprocess.TimeoutExpired:
        print(f"training_run {server.pid} did not stop in 30 s after SIGTERM: killed", file=sys.stderr)
        server.kill()


async def _wait_serving(address: str, log: Path) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                found = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if found.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"training_run did not start; its log: {log}")
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str | None]:
    """A fresh database on the suite's PostgreSQL, dropped afterwards; None when none is reachable."""
    import asyncpg

    try:
        admin = await asyncio.wait_for(asyncpg.connect(POSTGRES_ADMIN_URL), 3)
    except Exception as exc:
        print(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}", file=sys.stderr)
        yield None
        return
    name = f"raven_bench_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
