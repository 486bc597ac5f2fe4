"""The fake TrainingRunService, and scripted watch events for it (see fakes.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import empty_pb2

from common import errors
from common.grpc_interceptors import principal
from common.proto.raven.v1 import events_pb2, training_run_pb2, training_run_pb2_grpc, types_pb2
from tests.integration.cli.faults import Faults


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
        self.faults = Faults()
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
