"""Tiny in-memory TrainingRunService / TrainedModelService servers for client and ravenctl tests.

They subclass the generated servicers and run behind ``common.grpc_server.create_server``, so authentication
and error encoding (google.rpc.Status with BadRequest details) are real. Faults are scripted per test:
``fail_first[method] = n`` answers UNAVAILABLE n times, ``delay[method]`` sleeps before answering, and watch /
download streams drop after a scripted number of messages.

The servicers are in fake_training_runs.py and fake_trained_models.py; the faults in faults.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from common.auth import TokenVerifier
from common.grpc_server import RunningServer, ServiceRegistration, create_server
from common.proto.raven.v1 import evaluations_pb2_grpc, trained_model_pb2_grpc, training_run_pb2_grpc
from tests.helpers import JWT_SECRET
from tests.integration.cli.fake_evaluations import FakeEvaluations
from tests.integration.cli.fake_trained_models import FakeTrainedModels
from tests.integration.cli.fake_training_runs import FakeTrainingRuns


@dataclass
class FakeStack:
    runs: FakeTrainingRuns
    models: FakeTrainedModels
    training_run_addr: str
    trained_model_addr: str
    loop: asyncio.AbstractEventLoop
    evaluations: FakeEvaluations = field(default_factory=FakeEvaluations)  # on the trained_model server


async def start_servers(
    runs: FakeTrainingRuns, models: FakeTrainedModels
) -> tuple[FakeStack, list[RunningServer]]:
    verifier = TokenVerifier(secret=JWT_SECRET)
    evaluations = FakeEvaluations()
    servers = [
        await create_server(registrations, verifier, address="127.0.0.1:0")
        for registrations in (
            [
                ServiceRegistration(
                    training_run_pb2_grpc.add_TrainingRunServiceServicer_to_server,
                    runs,
                    "raven.v1.TrainingRunService",
                )
            ],
            [
                ServiceRegistration(
                    trained_model_pb2_grpc.add_TrainedModelServiceServicer_to_server,
                    models,
                    "raven.v1.TrainedModelService",
                ),
                ServiceRegistration(
                    evaluations_pb2_grpc.add_EvaluationServiceServicer_to_server,
                    evaluations,
                    "raven.v1.EvaluationService",
                ),
            ],
        )
    ]
    addrs = [f"127.0.0.1:{server.port}" for server in servers]
    loop = asyncio.get_running_loop()
    return FakeStack(runs, models, addrs[0], addrs[1], loop, evaluations), servers


@asynccontextmanager
async def serve() -> AsyncIterator[FakeStack]:
    """Both fake servers on the running loop (async tests)."""
    stack, servers = await start_servers(FakeTrainingRuns(), FakeTrainedModels())
    try:
        yield stack
    finally:
        for server in servers:
            await server.server.stop(0)


@contextmanager
def serve_in_thread() -> Iterator[FakeStack]:
    """Both fake servers on an event loop of their own thread, for sync callers (CliRunner).

    Callers run their coroutines on ``stack.loop`` too: grpc.aio misbehaves with two loops in one process.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    stack, servers = asyncio.run_coroutine_threadsafe(
        start_servers(FakeTrainingRuns(), FakeTrainedModels()), loop
    ).result(30)
    try:
        yield stack
    finally:
        for server in servers:
            asyncio.run_coroutine_threadsafe(server.server.stop(0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
