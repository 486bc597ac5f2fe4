"""Client processes of bench_training_run.py: each one is what an outside client is.

They use only the public API: the generated stubs of ``protos/`` over their own channels, with JWTs they mint
themselves from the deployment's secret. Each runs in its own (spawned) process, so that no client shares an
event loop or a GIL with the server or with another client. Results go back on a multiprocessing queue.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

import grpc

from common.auth import USER_PERMISSIONS, mint_token
from common.proto.raven.v1 import training_run_pb2 as pb
from common.proto.raven.v1 import training_run_pb2_grpc, types_pb2

WATCHERS = 1000
WATCH_PROCS = 4


def user_token(secret: str, subject: str = "bench") -> str:
    return "Bearer " + mint_token(subject, list(USER_PERMISSIONS), secret=secret)


def create_request(i: int, dataset_version: str) -> pb.CreateTrainingRunRequest:
    """A run on a READY dataset version: queued at once, claimable (a plain ``dataset`` would wait PENDING for
    its implicit version's preparation)."""
    return pb.CreateTrainingRunRequest(
        training_run=pb.TrainingRun(
            display_name=f"bench {i}",
            dataset_version=dataset_version,
            model_template="rtmdet_tiny",
            hyperparameters=types_pb2.Hyperparameters(epochs=2),
        )
    )


def _exit(out: Any, result: Any) -> None:
    """Hands ``result`` back and leaves at once: with 1,000 finished streams, a clean ``asyncio.run`` exit can
    take long enough to disturb the next measurement."""
    out.put(result)
    out.close()
    out.join_thread()
    os._exit(0)


# ---- unary load (GetTrainingRun / ListTrainingRuns, real or bare server) ---------------------------------
@dataclass
class UnaryLoad:
    address: str
    method: str  # "get", "list" or "pages" (one caller reads every page of the list once)
    request: bytes  # the serialized request
    secret: str
    start_at: float  # wall clock: every client process starts together
    seconds: float
    callers: int
    subject: str = "bench"


def unary_load(load: UnaryLoad, out: Any) -> None:
    """Calls ``load.method`` from ``load.callers`` concurrent callers on one channel for ``load.seconds``;
    puts (calls per second, latencies, errors)."""

    async def run() -> tuple[float, list[float], int]:
        channel = grpc.aio.insecure_channel(load.address)
        stub = training_run_pb2_grpc.TrainingRunServiceStub(channel)
        if load.method == "get":
            call, request = stub.GetTrainingRun, pb.GetTrainingRunRequest.FromString(load.request)
        else:
            call, request = stub.ListTrainingRuns, pb.ListTrainingRunsRequest.FromString(load.request)
        metadata = (("authorization", user_token(load.secret, load.subject)),)
        if load.method == "pages":  # every page once, each a page not read before
            await channel.channel_ready()
            return await _all_pages(stub, request, metadata, load.start_at)
        await call(request, metadata=metadata)  # connect, and check that the call works
        await asyncio.sleep(max(0.0, load.start_at - time.time()))
        latencies: list[float] = []
        errors = 0
        begin = time.perf_counter()
        stop = begin + load.seconds

        async def caller() -> None:
            nonlocal errors
            while (started := time.perf_counter()) < stop:
                try:
                    await call(request, metadata=metadata)
                except grpc.aio.AioRpcError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(caller() for _ in range(load.callers)))
        return len(latencies) / (time.perf_counter() - begin), latencies, errors

    _exit(out, asyncio.run(run()))


async def _all_pages(
    stub: training_run_pb2_grpc.TrainingRunServiceStub, request: Any, metadata: Any, start_at: float
) -> tuple[float, list[float], int]:
    await asyncio.sleep(max(0.0, start_at - time.time()))
    latencies: list[float] = []
    begin = time.perf_counter()
    while True:
        started = time.perf_counter()
        page = await stub.ListTrainingRuns(request, metadata=metadata)
        latencies.append(time.perf_counter() - started)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    return len(latencies) / (time.perf_counter() - begin), latencies, 0


# ---- watchers ------------------------------------------------------------------------------------------
@dataclass
class WatchLoad:
    address: str
    run_name: str
    secret: str
    watchers: int
    channels: int
    timeout: float = 120.0


@dataclass
class WatchResult:
    ready: int = 0  # streams that received their first (replayed) event
    ended: int = 0  # streams that received the run's terminal event and then ended
    errors: list[str] = field(default_factory=list)
    # (stream sequence, kind, event time, receipt time); the event time of a progress event is its snapshot's
    # update_time, of any other event the RunEvent's time.
    deliveries: list[tuple[int, str, float, float]] = field(default_factory=list)


def _event_time(response: pb.WatchTrainingRunResponse, kind: str) -> float:
    event = response.event
    if kind == "progress" and event.progress.progress.HasField("update_time"):
        return event.progress.progress.update_time.ToNanoseconds() / 1e9
    return event.time.ToNanoseconds() / 1e9


def watch_load(load: WatchLoad, ready: Any, out: Any) -> None:
    """Opens ``load.watchers`` WatchTrainingRun streams over ``load.channels`` channels; puts the number of
    streams that are live on ``ready``, then follows them to the run's end and puts a ``WatchResult``."""

    async def run() -> WatchResult:
        result = WatchResult()
        channels = [grpc.aio.insecure_channel(load.address) for _ in range(load.channels)]
        stubs = [training_run_pb2_grpc.TrainingRunServiceStub(c) for c in channels]
        metadata = (("authorization", user_token(load.secret)),)
        all_ready = asyncio.Event()
        request = pb.WatchTrainingRunRequest(name=load.run_name)

        async def watcher(stub: training_run_pb2_grpc.TrainingRunServiceStub) -> None:
            first = True
            try:
                async for response in stub.WatchTrainingRun(request, metadata=metadata):
                    received = time.time()
                    kind = response.event.WhichOneof("payload") or ""
                    result.deliveries.append(
                        (response.event.sequence, kind, _event_time(response, kind), received)
                    )
                    if first:
                        first = False
                        result.ready += 1
                        if result.ready == load.watchers:
                            all_ready.set()
                result.ended += 1
            except grpc.aio.AioRpcError as exc:
                result.errors.append(f"{exc.code().name}: {exc.details()}")

        tasks = [asyncio.create_task(watcher(stubs[i % load.channels])) for i in range(load.watchers)]
        try:
            await asyncio.wait_for(all_ready.wait(), load.timeout)
        except TimeoutError:
            pass
        ready.put(result.ready)
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), load.timeout)
        except TimeoutError:
            result.errors.append(f"{load.watchers - result.ended} streams did not end in {load.timeout} s")
        return result

    try:
        found = asyncio.run(run())
    except BaseException as exc:  # the parent must not wait for a result that never comes
        found = WatchResult(errors=[f"client process failed: {exc!r}"])
        ready.put(0)
    _exit(out, found)


# ---- creates at a fixed rate ---------------------------------------------------------------------------
@dataclass
class CreateLoad:
    address: str
    secret: str
    rate: float  # calls per second
    seconds: float
    dataset_version: str


def create_load(load: CreateLoad, out: Any) -> None:
    """CreateTrainingRun ``load.rate`` times a second (open loop: a slow call does not delay the next);
    puts (latencies, error texts)."""

    async def run() -> tuple[list[float], list[str]]:
        channel = grpc.aio.insecure_channel(load.address)
        stub = training_run_pb2_grpc.TrainingRunServiceStub(channel)
        metadata = (("authorization", user_token(load.secret, "bench-creator")),)
        latencies: list[float] = []
        errors: list[str] = []

        async def one(i: int) -> None:
            started = time.perf_counter()
            try:
                await stub.CreateTrainingRun(create_request(i, load.dataset_version), metadata=metadata)
                latencies.append(time.perf_counter() - started)
            except grpc.aio.AioRpcError as exc:
                errors.append(f"{exc.code().name}: {exc.details()}")

        begin = time.perf_counter()
        calls = []
        for i in range(int(load.rate * load.seconds)):
            await asyncio.sleep(max(0.0, begin + i / load.rate - time.perf_counter()))
            calls.append(asyncio.create_task(one(i)))
        await asyncio.gather(*calls)
        return latencies, errors

    _exit(out, asyncio.run(run()))
