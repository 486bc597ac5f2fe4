"""Tiny in-memory TrainingRunService / TrainedModelService servers for client and ravenctl tests.

They subclass the generated servicers and run behind ``common.grpc_server.create_server``, so authentication
and error encoding (google.rpc.Status with BadRequest details) are real. Faults are scripted per test:
``fail_first[method] = n`` answers UNAVAILABLE n times, ``delay[method]`` sleeps before answering, and watch /
download streams drop after a scripted number of messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import empty_pb2

from common import errors
from common.auth import TokenVerifier
from common.grpc_interceptors import principal
from common.grpc_server import RunningServer, ServiceRegistration, create_server
from common.proto.raven.v1 import (
    events_pb2,
    trained_model_pb2,
    trained_model_pb2_grpc,
    training_run_pb2,
    training_run_pb2_grpc,
    types_pb2,
)
from tests.helpers import JWT_SECRET


class _Faults:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.fail_first: dict[str, int] = {}
        self.delay: dict[str, float] = {}
        self.time_remaining: dict[str, list[float | None]] = defaultdict(list)

    async def enter(self, method: str, context: grpc.aio.ServicerContext) -> None:
        principal()  # every fake RPC runs authenticated, like the real ones
        self.calls[method] += 1
        self.time_remaining[method].append(context.time_remaining())
        if self.delay.get(method):
            await asyncio.sleep(self.delay[method])
        if self.fail_first.get(method, 0) > 0:
            self.fail_first[method] -= 1
            raise errors.Unavailable(f"{method} is restarting")


def run_event(
    sequence: int, run: training_run_pb2.TrainingRun, **payload: Any
) -> training_run_pb2.WatchTrainingRunResponse:
    event = events_pb2.RunEvent(run_id=run.name.split("/")[-1], attempt=1, sequence=sequence, **payload)
    return training_run_pb2.WatchTrainingRunResponse(
        event=event, resume_token=str(sequence), training_run=run
    )


def scripted_events(
    run: training_run_pb2.TrainingRun, *, iterations: int = 6, final: int = types_pb2.SUCCEEDED
) -> list[training_run_pb2.WatchTrainingRunResponse]:
    """started, phase TRAINING, ``iterations`` progress events, then the terminal state change."""
    running = training_run_pb2.TrainingRun()
    running.CopyFrom(run)
    running.state = types_pb2.RUNNING
    out = [run_event(1, running, started=events_pb2.RunStarted(worker_id="w1", device="cpu"))]
    out.append(run_event(2, running, phase_changed=events_pb2.PhaseChanged(phase=types_pb2.TRAINING)))
    for i in range(1, iterations + 1):
        progress = types_pb2.ProgressSnapshot(
            phase=types_pb2.TRAINING,
            epoch=1 + (i - 1) // 2,
            max_epochs=(iterations + 1) // 2,
            iter=i,
            max_iters=iterations,
            losses=[types_pb2.Loss(name="loss", value=2.0 / i)],
            learning_rate=0.01,
        )
        progress.eta.FromSeconds(iterations - i)
        snapshot = training_run_pb2.TrainingRun()
        snapshot.CopyFrom(running)
        snapshot.progress.CopyFrom(progress)
        out.append(run_event(2 + i, snapshot, progress=events_pb2.ProgressReported(progress=progress)))
    done = training_run_pb2.TrainingRun()
    done.CopyFrom(running)
    done.state = final
    if final == types_pb2.FAILED:
        done.failure.CopyFrom(
            types_pb2.Failure(kind=types_pb2.INVALID_DATASET, message="annotation 3 has no image")
        )
    if final == types_pb2.SUCCEEDED:
        done.trained_model = "trainedModels/m1"
    change = events_pb2.StateChanged(from_state=types_pb2.RUNNING, to_state=final, reason="done")
    out.append(run_event(len(out) + 1, done, state_changed=change))
    return out


class FakeTrainingRuns(training_run_pb2_grpc.TrainingRunServiceServicer):
    def __init__(self) -> None:
        self.faults = _Faults()
        self.runs: dict[str, training_run_pb2.TrainingRun] = {}
        self.request_ids: list[str] = []
        self.by_request_id: dict[str, str] = {}
        self.events: dict[str, list[training_run_pb2.WatchTrainingRunResponse]] = {}
        # Per watch call, popped in order: ("abort" | "end" | "hold", n) sends n events, then answers
        # UNAVAILABLE, ends the stream, or keeps it open.
        self.watch_drops: list[tuple[str, int]] = []
        self.watch_tokens: list[str] = []
        self.replay_inclusive = False
        self.logs: dict[str, list[str]] = {}
        self.watch_all_items: list[training_run_pb2.WatchTrainingRunsResponse] = []

    def add(self, run: training_run_pb2.TrainingRun) -> training_run_pb2.TrainingRun:
        self.runs[run.name] = run
        return run

    def _get(self, name: str) -> training_run_pb2.TrainingRun:
        if name not in self.runs:
            raise errors.NotFound(f"training run {name!r} not found")
        return self.runs[name]

    async def CreateTrainingRun(self, request: Any, context: Any) -> training_run_pb2.TrainingRun:
        self.request_ids.append(request.request_id)
        await self.faults.enter("CreateTrainingRun", context)
        run = request.training_run
        violations = []
        if not run.display_name:
            violations.append(errors.FieldViolation("training_run.display_name", "must not be empty"))
        if not 0 <= run.hyperparameters.epochs <= 500:
            violations.append(
                errors.FieldViolation("training_run.hyperparameters.epochs", "must be in 1..500")
            )
        errors.require(violations)
        if request.request_id in self.by_request_id:
            return self.runs[self.by_request_id[request.request_id]]
        created = training_run_pb2.TrainingRun()
        created.CopyFrom(run)
        created.name = f"trainingRuns/r{len(self.runs) + 1}"
        created.state = types_pb2.PENDING
        created.owner = principal().subject
        if request.validate_only:
            return created
        self.by_request_id[request.request_id] = created.name
        return self.add(created)

    async def GetTrainingRun(self, request: Any, context: Any) -> training_run_pb2.TrainingRun:
        await self.faults.enter("GetTrainingRun", context)
        return self._get(request.name)

    async def ListTrainingRuns(self, request: Any, context: Any) -> training_run_pb2.ListTrainingRunsResponse:
        await self.faults.enter("ListTrainingRuns", context)
        runs = [r for r in self.runs.values() if not request.states or r.state in request.states]
        start = int(request.page_token or 0)
        size = request.page_size or 50
        page = runs[start : start + size]
        token = str(start + size) if start + size < len(runs) else ""
        return training_run_pb2.ListTrainingRunsResponse(
            training_runs=page, next_page_token=token, total_size=len(runs)
        )

    async def CancelTrainingRun(self, request: Any, context: Any) -> training_run_pb2.TrainingRun:
        await self.faults.enter("CancelTrainingRun", context)
        run = self._get(request.name)
        if run.state in (types_pb2.SUCCEEDED, types_pb2.FAILED, types_pb2.CANCELLED):
            raise errors.FailedPrecondition(f"{run.name} is {types_pb2.RunState.Name(run.state)}")
        run.state = types_pb2.CANCELLED if run.state == types_pb2.PENDING else types_pb2.CANCELLING
        return run

    async def DeleteTrainingRun(self, request: Any, context: Any) -> empty_pb2.Empty:
        await self.faults.enter("DeleteTrainingRun", context)
        del self.runs[self._get(request.name).name]
        return empty_pb2.Empty()

    async def GetTrainingRunLogs(
        self, request: Any, context: Any
    ) -> training_run_pb2.GetTrainingRunLogsResponse:
        await self.faults.enter("GetTrainingRunLogs", context)
        run = self._get(request.name)
        lines = self.logs.get(request.name, [])
        start = int(request.page_token or 0)
        page = lines[start : start + (request.page_size or 500)]
        end = start + len(page)
        complete = run.state in (types_pb2.SUCCEEDED, types_pb2.FAILED, types_pb2.CANCELLED) and end == len(
            lines
        )
        return training_run_pb2.GetTrainingRunLogsResponse(
            lines=page, next_page_token=str(end), complete=complete
        )

    async def WatchTrainingRun(self, request: Any, context: Any) -> AsyncIterator[Any]:
        await self.faults.enter("WatchTrainingRun", context)
        self._get(request.name)
        self.watch_tokens.append(request.resume_token)
        after = int(request.resume_token or 0)
        pending = [
            e for e in self.events.get(request.name, []) if e.event.sequence > after - self.replay_inclusive
        ]
        how, limit = self.watch_drops.pop(0) if self.watch_drops else ("", len(pending))
        for response in pending[:limit]:
            yield response
        if how == "abort":
            raise errors.Unavailable("connection to the event stream lost")
        if how == "hold":
            await asyncio.Event().wait()  # until the server goes away under it

    async def WatchTrainingRuns(self, request: Any, context: Any) -> AsyncIterator[Any]:
        await self.faults.enter("WatchTrainingRuns", context)
        how, limit = self.watch_drops.pop(0) if self.watch_drops else ("", len(self.watch_all_items))
        for item in self.watch_all_items[:limit]:
            yield item
        if how == "abort":
            raise errors.Unavailable("connection to the event stream lost")
        await asyncio.Event().wait()  # stays open for as long as the client listens


@dataclass
class StoredArtifact:
    data: bytes
    filename: str
    sha256: str = ""

    def __post_init__(self) -> None:
        self.sha256 = self.sha256 or hashlib.sha256(self.data).hexdigest()


class FakeTrainedModels(trained_model_pb2_grpc.TrainedModelServiceServicer):
    def __init__(self) -> None:
        self.faults = _Faults()
        self.models: dict[str, trained_model_pb2.TrainedModel] = {}
        self.artifacts: dict[tuple[str, int], StoredArtifact] = {}
        self.download_offsets: list[int] = []
        self.download_drops: list[int] = []  # per download call: chunks sent before UNAVAILABLE
        self.stats: dict[str, trained_model_pb2.TrainedModelStatistics] = {}

    def add(self, model: trained_model_pb2.TrainedModel) -> trained_model_pb2.TrainedModel:
        self.models[model.name] = model
        return model

    def _get(self, name: str) -> trained_model_pb2.TrainedModel:
        if name not in self.models:
            raise errors.NotFound(f"trained model {name!r} not found")
        return self.models[name]

    async def GetTrainedModel(self, request: Any, context: Any) -> trained_model_pb2.TrainedModel:
        await self.faults.enter("GetTrainedModel", context)
        return self._get(request.name)

    async def ListTrainedModels(
        self, request: Any, context: Any
    ) -> trained_model_pb2.ListTrainedModelsResponse:
        await self.faults.enter("ListTrainedModels", context)
        models = [
            m
            for m in self.models.values()
            if not request.HasField("published") or m.published == request.published
        ]
        return trained_model_pb2.ListTrainedModelsResponse(trained_models=models, total_size=len(models))

    async def PublishTrainedModel(self, request: Any, context: Any) -> trained_model_pb2.TrainedModel:
        await self.faults.enter("PublishTrainedModel", context)
        model = self._get(request.name)
        if not request.force and model.evaluation.val.bbox_map < request.min_bbox_map:
            raise errors.FailedPrecondition(
                f"bbox mAP {model.evaluation.val.bbox_map:.3f} is below the gate {request.min_bbox_map:.3f}"
            )
        model.published = True
        model.published_by = principal().subject
        return model

    async def UnpublishTrainedModel(self, request: Any, context: Any) -> trained_model_pb2.TrainedModel:
        await self.faults.enter("UnpublishTrainedModel", context)
        model = self._get(request.name)
        model.published = False
        return model

    def _node(self, model: trained_model_pb2.TrainedModel, depth: int) -> trained_model_pb2.LineageNode:
        return trained_model_pb2.LineageNode(
            trained_model=model.name,
            display_name=model.display_name,
            version=model.version,
            base_model=model.base_model,
            training_run=model.training_run,
            dataset=model.dataset,
            bbox_map=model.evaluation.val.bbox_map,
            published=model.published,
            depth=depth,
        )

    async def GetModelLineage(self, request: Any, context: Any) -> trained_model_pb2.ModelLineage:
        await self.faults.enter("GetModelLineage", context)
        model = self._get(request.name)
        ancestors, parent, depth = [], model.base_model, -1
        while parent in self.models:
            ancestors.append(self._node(self.models[parent], depth))
            parent, depth = self.models[parent].base_model, depth - 1
        children = [self._node(m, 1) for m in self.models.values() if m.base_model == model.name]
        return trained_model_pb2.ModelLineage(
            model=self._node(model, 0), ancestors=ancestors, descendants=children
        )

    async def ImportTrainedModel(self, request: Any, context: Any) -> trained_model_pb2.TrainedModel:
        await self.faults.enter("ImportTrainedModel", context)
        return self.add(
            trained_model_pb2.TrainedModel(
                name=f"trainedModels/imported-{len(self.models) + 1}",
                display_name=request.display_name,
                version=1,
                class_names=request.class_names,
                model_template=request.model_template,
            )
        )

    async def GetTrainedModelStatistics(self, request: Any, context: Any) -> Any:
        await self.faults.enter("GetTrainedModelStatistics", context)
        model = self._get(request.name)
        return self.stats.get(model.name) or trained_model_pb2.TrainedModelStatistics(
            trained_model=model.name, evaluation=model.evaluation, training_seconds=model.training_seconds
        )

    async def DownloadModelArtifact(self, request: Any, context: Any) -> AsyncIterator[Any]:
        await self.faults.enter("DownloadModelArtifact", context)
        self._get(request.name)
        artifact = self.artifacts.get((request.name, request.kind or types_pb2.CHECKPOINT))
        if artifact is None:
            raise errors.NotFound(
                f"{request.name} has no {types_pb2.ArtifactKind.Name(request.kind)} artifact"
            )
        if request.offset > len(artifact.data):
            raise errors.InvalidArgument("offset is past the end of the artifact")
        self.download_offsets.append(request.offset)
        size = request.chunk_size or 1024
        drop_after = self.download_drops.pop(0) if self.download_drops else -1
        for sent, offset in enumerate(range(request.offset, len(artifact.data), size)):
            if sent == drop_after:
                raise errors.Unavailable("artifact store connection reset")
            first = sent == 0
            yield trained_model_pb2.DownloadModelArtifactResponse(
                data=artifact.data[offset : offset + size],
                offset=offset,
                total_size=len(artifact.data) if first else 0,
                sha256=artifact.sha256 if first else "",
                filename=artifact.filename if first else "",
            )


@dataclass
class FakeStack:
    runs: FakeTrainingRuns
    models: FakeTrainedModels
    training_run_addr: str
    trained_model_addr: str
    loop: asyncio.AbstractEventLoop


async def start_servers(
    runs: FakeTrainingRuns, models: FakeTrainedModels
) -> tuple[FakeStack, list[RunningServer]]:
    verifier = TokenVerifier(secret=JWT_SECRET)
    servers = [
        await create_server([ServiceRegistration(add, servicer, name)], verifier, address="127.0.0.1:0")
        for add, servicer, name in (
            (
                training_run_pb2_grpc.add_TrainingRunServiceServicer_to_server,
                runs,
                "raven.v1.TrainingRunService",
            ),
            (
                trained_model_pb2_grpc.add_TrainedModelServiceServicer_to_server,
                models,
                "raven.v1.TrainedModelService",
            ),
        )
    ]
    addrs = [f"127.0.0.1:{server.port}" for server in servers]
    return FakeStack(runs, models, addrs[0], addrs[1], asyncio.get_running_loop()), servers


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
