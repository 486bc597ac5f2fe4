"""TrainingRunService servicer: translates protobuf ↔ commands; no business rules here.

Errors are mapped to gRPC statuses by the interceptors.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from google.protobuf import duration_pb2, empty_pb2

from common.auth import Permission
from common.errors import FieldViolation, InvalidArgument
from common.grpc_interceptors import principal
from common.proto.raven.v1 import training_run_pb2 as pb
from common.proto.raven.v1 import training_run_pb2_grpc
from services.training_run.adapters.discovery_mapping import (
    queue_to_proto,
    template_to_proto,
    worker_info_from_proto,
    worker_to_proto,
)
from services.training_run.adapters.proto_mapping import (
    duration_seconds,
    hyperparameters_from_proto,
    run_to_proto,
    timestamp,
)
from services.training_run.adapters.run_feeds import RunChangesHub, RunFeedHub
from services.training_run.service_layer import commands
from services.training_run.service_layer.discovery import LIST_WORKERS_PERMISSION, Discovery
from services.training_run.service_layer.run_reads import RenderedRuns
from services.training_run.service_layer.run_tracking import RunTracking
from services.training_run.service_layer.services import TrainingRunService, parse_name

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TrainingRunService"].full_name
SERVICE = f"/{SERVICE_NAME}/"
REQUIRED_PERMISSIONS = {
    SERVICE + "CreateTrainingRun": Permission.CREATE_TRAINING_RUNS,
    SERVICE + "GetTrainingRun": Permission.VIEW_TRAINING_RUNS,
    SERVICE + "ListTrainingRuns": Permission.VIEW_TRAINING_RUNS,
    SERVICE + "UpdateTrainingRun": Permission.EDIT_TRAINING_RUNS,
    SERVICE + "DeleteTrainingRun": Permission.DELETE_TRAINING_RUNS,
    SERVICE + "CancelTrainingRun": Permission.CANCEL_TRAINING_RUNS,
    SERVICE + "WatchTrainingRun": Permission.VIEW_TRAINING_RUNS,
    SERVICE + "WatchTrainingRuns": Permission.VIEW_TRAINING_RUNS,
    SERVICE + "GetTrainingRunLogs": Permission.VIEW_TRAINING_RUNS,
    SERVICE + "ClaimTrainingRun": Permission.WORKER,
    SERVICE + "HeartbeatTrainingRun": Permission.WORKER,
    SERVICE + "ReleaseTrainingRun": Permission.WORKER,
    SERVICE + "HeartbeatWorker": Permission.WORKER,
    SERVICE + "ListModelTemplates": Permission.VIEW_TRAINING_RUNS,
    SERVICE + "GetModelTemplate": Permission.VIEW_TRAINING_RUNS,
    SERVICE + "ListWorkers": LIST_WORKERS_PERMISSION,
}


def resume_after(token: str, rpc: str = "WatchTrainingRun") -> int:
    """The stream sequence a watch resumes after (0: from the start); both watch RPCs use stream sequences."""
    if not token:
        return 0
    if not token.isdigit() or len(token) > 20:
        raise InvalidArgument(
            f"resume_token must come from a previous {rpc} response",
            [FieldViolation("resume_token", "is not a resume token")],
        )
    return int(token)


class TrainingRunServicer(training_run_pb2_grpc.TrainingRunServiceServicer):
    def __init__(
        self,
        service: TrainingRunService,
        tracking: RunTracking,
        feeds: RunFeedHub,
        changes: RunChangesHub,
        reads: RenderedRuns,
        discovery: Discovery,
    ) -> None:
        self._service = service
        self._tracking = tracking
        self._discovery = discovery
        self._feeds = feeds
        self._changes = changes
        self._reads = reads

    async def CreateTrainingRun(self, request: pb.CreateTrainingRunRequest, context: Any) -> pb.TrainingRun:
        run = request.training_run
        metadata = tuple((k, v) for k, v in (context.invocation_metadata() or ()) if k == "authorization")
        command = commands.CreateTrainingRun(
            display_name=run.display_name, dataset=run.dataset, model_template=run.model_template,
            description=run.description, base_model=run.base_model, class_names=tuple(run.class_names),
            hyperparameters=hyperparameters_from_proto(run.hyperparameters),
            request_id=request.request_id, validate_only=request.validate_only, auth_metadata=metadata,
            dataset_version=run.dataset_version, allow_split_overlap=request.allow_split_overlap,
            max_runtime_seconds=duration_seconds(run.max_runtime) if run.HasField("max_runtime") else None,
            max_pending_seconds=duration_seconds(run.max_pending) if run.HasField("max_pending") else None,
        )  # fmt: skip
        return run_to_proto(await self._service.create(principal(), command))

    async def GetTrainingRun(self, request: pb.GetTrainingRunRequest, context: Any) -> bytes:
        return await self._reads.get(principal(), request.name)  # a serialized pb.TrainingRun

    async def ListTrainingRuns(
        self, request: pb.ListTrainingRunsRequest, context: Any
    ) -> pb.ListTrainingRunsResponse:
        runs, token, total = await self._reads.list(principal(), commands.ListTrainingRuns(
            page_size=request.page_size, page_token=request.page_token, states=tuple(request.states),
            owner=request.owner, dataset=request.dataset, base_model=request.base_model,
            model_template=request.model_template,
        ))  # fmt: skip
        response = pb.ListTrainingRunsResponse(next_page_token=token, total_size=total)
        for run in runs:  # serialized, without the resolved configs: GetTrainingRun has them
            response.training_runs.add().MergeFromString(run)
        return response

    async def UpdateTrainingRun(self, request: pb.UpdateTrainingRunRequest, context: Any) -> pb.TrainingRun:
        run = request.training_run
        command = commands.UpdateTrainingRun(
            name=run.name,
            paths=tuple(request.update_mask.paths),
            display_name=run.display_name,
            description=run.description,
            etag=request.etag or run.etag,
        )
        return run_to_proto(await self._service.update(principal(), command))

    async def DeleteTrainingRun(self, request: pb.DeleteTrainingRunRequest, context: Any) -> empty_pb2.Empty:
        await self._service.delete(principal(), request.name, request.etag)
        return empty_pb2.Empty()

    async def CancelTrainingRun(self, request: pb.CancelTrainingRunRequest, context: Any) -> pb.TrainingRun:
        return run_to_proto(await self._service.cancel(principal(), request.name, request.reason))

    async def GetTrainingRunLogs(
        self, request: pb.GetTrainingRunLogsRequest, context: Any
    ) -> pb.GetTrainingRunLogsResponse:
        lines, token, complete = await self._service.logs(
            principal(), request.name, request.attempt, request.page_size, request.page_token
        )
        return pb.GetTrainingRunLogsResponse(lines=lines, next_page_token=token, complete=complete)

    async def WatchTrainingRun(
        self, request: pb.WatchTrainingRunRequest, context: Any
    ) -> AsyncIterator[pb.WatchTrainingRunResponse | bytes]:
        after = resume_after(request.resume_token)
        snapshot: pb.TrainingRun | None = None
        run, items = await self._service.watch(principal(), request.name, after, self._feeds.watch)
        async with contextlib.aclosing(items):  # type: ignore[type-var]
            async for item in items:
                if item.rendered is not None:  # live: built and serialized once for every watcher
                    yield item.rendered
                    continue
                if snapshot is None:  # replayed: the run as read when the call began
                    snapshot = run_to_proto(run, with_config=False)
                event = item.event
                yield pb.WatchTrainingRunResponse(
                    event=event, resume_token=str(event.sequence), training_run=snapshot
                )

    async def WatchTrainingRuns(
        self, request: pb.WatchTrainingRunsRequest, context: Any
    ) -> AsyncIterator[pb.WatchTrainingRunsResponse]:
        query = commands.WatchTrainingRuns(
            states=tuple(request.states), owner=request.owner, dataset=request.dataset,
            model_template=request.model_template,
        )  # fmt: skip
        async for item in self._service.watch_changes(principal(), query, self._changes.watch()):
            event = item.event
            assert item.rendered is not None
            message = run_to_proto(item.rendered, with_config=False)
            if event.WhichOneof("payload") == "state_changed":
                previous = event.state_changed.from_state
                message.state = event.state_changed.to_state
            else:
                previous = message.state
                message.progress.phase = event.phase_changed.phase
            yield pb.WatchTrainingRunsResponse(training_run=message, previous_state=previous, time=event.time)

    # ---- worker RPCs ---------------------------------------------------------------------------------------
    async def ClaimTrainingRun(
        self, request: pb.ClaimTrainingRunRequest, context: Any
    ) -> pb.ClaimTrainingRunResponse:
        await self._discovery.worker_seen(request.worker_id, worker_info_from_proto(request.worker))
        claimed = await self._tracking.claim(parse_name(request.name), request.worker_id, request.job_attempt)
        run = claimed.run
        heartbeat = self._tracking.heartbeat_interval
        return pb.ClaimTrainingRunResponse(
            training_run=run_to_proto(run),
            attempt=run.attempt,
            lease_expire_time=timestamp(run.lease_expire_time),
            heartbeat_interval=duration_pb2.Duration(
                seconds=int(heartbeat.total_seconds()), nanos=heartbeat.microseconds * 1000
            ),
            resume_checkpoint=claimed.resume_checkpoint,
        )

    async def HeartbeatTrainingRun(
        self, request: pb.HeartbeatTrainingRunRequest, context: Any
    ) -> pb.HeartbeatTrainingRunResponse:
        await self._discovery.worker_seen(request.worker_id, worker_info_from_proto(request.worker))
        expires, stop = await self._tracking.heartbeat(
            parse_name(request.name), request.worker_id, request.attempt, request.latest_checkpoint
        )
        return pb.HeartbeatTrainingRunResponse(lease_expire_time=timestamp(expires), cancel_requested=stop)

    async def ReleaseTrainingRun(
        self, request: pb.ReleaseTrainingRunRequest, context: Any
    ) -> empty_pb2.Empty:
        await self._tracking.release(
            parse_name(request.name),
            request.worker_id,
            request.attempt,
            request.reason,
            request.latest_checkpoint,
        )
        return empty_pb2.Empty()

    async def HeartbeatWorker(self, request: pb.HeartbeatWorkerRequest, context: Any) -> empty_pb2.Empty:
        await self._discovery.worker_seen(request.worker_id, worker_info_from_proto(request.worker))
        return empty_pb2.Empty()

    # ---- discovery -----------------------------------------------------------------------------------------
    async def ListModelTemplates(
        self, request: pb.ListModelTemplatesRequest, context: Any
    ) -> pb.ListModelTemplatesResponse:
        found, token = self._discovery.list_templates(principal(), request.page_size, request.page_token)
        return pb.ListModelTemplatesResponse(
            model_templates=[template_to_proto(t, self._discovery.pretrained_backbone) for t in found],
            next_page_token=token,
        )

    async def GetModelTemplate(self, request: pb.GetModelTemplateRequest, context: Any) -> pb.ModelTemplate:
        template = self._discovery.get_template(principal(), request.name)
        return template_to_proto(template, self._discovery.pretrained_backbone)

    async def ListWorkers(self, request: pb.ListWorkersRequest, context: Any) -> pb.ListWorkersResponse:
        window = request.seen_within
        workers, queue = await self._discovery.list_workers(principal(), window.seconds + window.nanos / 1e9)
        return pb.ListWorkersResponse(
            workers=[worker_to_proto(w) for w in workers], queue=[queue_to_proto(q) for q in queue]
        )


def feed_response(service: TrainingRunService) -> Callable[[Any], Any]:
    """Renders each live event of a WatchTrainingRun feed once for all of its watchers: the event with the
    stored run, the event's progress laid over it (the event consumer may not have stored it yet), serialized
    (the same bytes go to every watcher)."""

    async def render(event: Any) -> bytes:
        response = pb.WatchTrainingRunResponse(event=event, resume_token=str(event.sequence))
        run = await service.snapshot(event.run_id)
        if run is not None:
            message = response.training_run
            message.CopyFrom(run_to_proto(run, with_config=False))
            fresh = (
                run.attempt == event.attempt and run.progress_seq < event.sequence and not run.state.terminal
            )
            kind = event.WhichOneof("payload")
            if fresh and kind == "progress":
                message.progress.CopyFrom(event.progress.progress)
            elif fresh and kind == "phase_changed":
                message.progress.phase = event.phase_changed.phase
        return response.SerializeToString()

    return render
