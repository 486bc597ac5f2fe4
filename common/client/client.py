# ruff: noqa: ASYNC109 - ``timeout`` is the gRPC deadline handed to each call, not an asyncio timeout.
"""``RavenClient``: typed async access to TrainingRunService and TrainedModelService.

Every unary call carries a deadline and bearer-token metadata; calls that are safe to repeat (reads, and
Create/Import because they carry a ``request_id``) are retried with exponential backoff and jitter. Streams
(``watch``, ``watch_all``, ``download``) reconnect by themselves where they can continue without loss.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import field_mask_pb2

from common.client.download import DownloadResult, download_artifact
from common.client.errors import RavenError
from common.client.retry import READ_RETRY_CODES, WRITE_RETRY_CODES, RetryPolicy
from common.proto.raven.v1 import (
    trained_model_pb2,
    trained_model_pb2_grpc,
    training_run_pb2,
    training_run_pb2_grpc,
    types_pb2,
)
from common.settings import Settings

T = TypeVar("T")
TokenSource = str | Callable[[], str] | None

TERMINAL_STATES = frozenset({types_pb2.SUCCEEDED, types_pb2.FAILED, types_pb2.CANCELLED})
STREAM_RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})
NO_CODES: frozenset[grpc.StatusCode] = frozenset()

# Keepalive lets a long watch notice a dead connection (the servers permit pings every 10 s without data).
DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
)


def is_terminal_event(response: training_run_pb2.WatchTrainingRunResponse) -> bool:
    """The server ends a watch after the state_changed event into SUCCEEDED, FAILED or CANCELLED."""
    event = response.event
    return event.HasField("state_changed") and event.state_changed.to_state in TERMINAL_STATES


class RavenClient:
    """Async client of both services; use as ``async with RavenClient(...) as client``.

    Args:
        training_run_addr: ``host:port`` of TrainingRunService.
        trained_model_addr: ``host:port`` of TrainedModelService.
        token: a bearer JWT, a callable returning one per call, or None (no authorization metadata).
        timeout: default deadline of every unary call attempt, seconds.
        retry: policy of idempotent unary calls and of stream reconnects (failures in a row without progress).
        download_timeout: deadline of one download connection, seconds.
    """

    def __init__(
        self,
        training_run_addr: str,
        trained_model_addr: str,
        *,
        token: TokenSource = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        download_timeout: float = 600.0,
        channel_options: Sequence[tuple[str, Any]] = DEFAULT_CHANNEL_OPTIONS,
    ) -> None:
        self._addrs = (training_run_addr, trained_model_addr)
        self._token = token
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.download_timeout = download_timeout
        self._options = list(channel_options)
        self._channels: dict[str, grpc.aio.Channel] = {}

    @classmethod
    def from_settings(cls, settings: Settings, *, token: TokenSource = None, **kwargs: Any) -> RavenClient:
        return cls(settings.training_run_addr, settings.trained_model_addr, token=token, **kwargs)

    async def __aenter__(self) -> RavenClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()

    # -- plumbing --------------------------------------------------------------------------------------------

    def _channel(self, addr: str) -> grpc.aio.Channel:
        # Created lazily so the channel binds to the event loop that uses it.
        if addr not in self._channels:
            self._channels[addr] = grpc.aio.insecure_channel(addr, options=self._options)
        return self._channels[addr]

    @property
    def _runs(self) -> training_run_pb2_grpc.TrainingRunServiceStub:
        return training_run_pb2_grpc.TrainingRunServiceStub(self._channel(self._addrs[0]))

    @property
    def _models(self) -> trained_model_pb2_grpc.TrainedModelServiceStub:
        return trained_model_pb2_grpc.TrainedModelServiceStub(self._channel(self._addrs[1]))

    def metadata(self, request_id: str = "") -> tuple[tuple[str, str], ...]:
        token = self._token() if callable(self._token) else self._token
        pairs = [("x-request-id", request_id or uuid.uuid4().hex)]
        if token:
            pairs.append(("authorization", f"Bearer {token}"))
        return tuple(pairs)

    async def _unary(
        self,
        method: Callable[..., Any],
        request: Any,
        *,
        retry_on: frozenset[grpc.StatusCode],
        timeout: float | None,
    ) -> Any:
        """One logical call: same request and request id on every attempt, a fresh deadline per attempt."""
        attempts = self.retry.max_attempts if retry_on else 1
        request_id = uuid.uuid4().hex
        for attempt in range(1, attempts + 1):
            try:
                return await method(
                    request, timeout=timeout or self.timeout, metadata=self.metadata(request_id)
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in retry_on or attempt == attempts:
                    raise RavenError.from_rpc_error(exc) from exc
            await asyncio.sleep(self.retry.backoff(attempt))
        raise AssertionError("unreachable")

    async def _read(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        return await self._unary(method, request, retry_on=READ_RETRY_CODES, timeout=timeout)

    async def _write(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        return await self._unary(method, request, retry_on=NO_CODES, timeout=timeout)

    async def _idempotent_write(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        return await self._unary(method, request, retry_on=WRITE_RETRY_CODES, timeout=timeout)

    # -- training runs ---------------------------------------------------------------------------------------

    async def create_run(
        self,
        training_run: training_run_pb2.TrainingRun,
        *,
        request_id: str = "",
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> training_run_pb2.TrainingRun:
        """Create a run; retried on UNAVAILABLE with one request_id (made when not given): never twice."""
        request = training_run_pb2.CreateTrainingRunRequest(
            training_run=training_run, request_id=request_id or str(uuid.uuid4()), validate_only=validate_only
        )
        return await self._idempotent_write(self._runs.CreateTrainingRun, request, timeout)

    async def get_run(self, name: str, *, timeout: float | None = None) -> training_run_pb2.TrainingRun:
        return await self._read(
            self._runs.GetTrainingRun, training_run_pb2.GetTrainingRunRequest(name=name), timeout
        )

    async def list_runs(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        states: Iterable[types_pb2.RunState | str] = (),
        owner: str = "",
        dataset: str = "",
        base_model: str = "",
        model_template: str = "",
        timeout: float | None = None,
    ) -> training_run_pb2.ListTrainingRunsResponse:
        request = training_run_pb2.ListTrainingRunsRequest(
            page_size=page_size,
            page_token=page_token,
            states=list(states),
            owner=owner,
            dataset=dataset,
            base_model=base_model,
            model_template=model_template,
        )
        return await self._read(self._runs.ListTrainingRuns, request, timeout)

    async def iter_runs(self, **filters: Any) -> AsyncIterator[training_run_pb2.TrainingRun]:
        """Every run matching ``list_runs`` filters, following page tokens."""
        filters.pop("page_token", None)
        token = ""
        while True:
            page = await self.list_runs(page_token=token, **filters)
            for run in page.training_runs:
                yield run
            token = page.next_page_token
            if not token:
                return

    async def update_run(
        self,
        training_run: training_run_pb2.TrainingRun,
        update_mask: Sequence[str],
        *,
        etag: str = "",
        timeout: float | None = None,
    ) -> training_run_pb2.TrainingRun:
        request = training_run_pb2.UpdateTrainingRunRequest(
            training_run=training_run,
            update_mask=field_mask_pb2.FieldMask(paths=list(update_mask)),
            etag=etag,
        )
        return await self._write(self._runs.UpdateTrainingRun, request, timeout)

    async def cancel_run(
        self, name: str, *, reason: str = "", timeout: float | None = None
    ) -> training_run_pb2.TrainingRun:
        request = training_run_pb2.CancelTrainingRunRequest(name=name, reason=reason)
        return await self._write(self._runs.CancelTrainingRun, request, timeout)

    async def delete_run(self, name: str, *, etag: str = "", timeout: float | None = None) -> None:
        await self._write(
            self._runs.DeleteTrainingRun,
            training_run_pb2.DeleteTrainingRunRequest(name=name, etag=etag),
            timeout,
        )

    async def get_logs(
        self,
        name: str,
        *,
        page_size: int = 0,
        page_token: str = "",
        attempt: int = 0,
        timeout: float | None = None,
    ) -> training_run_pb2.GetTrainingRunLogsResponse:
        request = training_run_pb2.GetTrainingRunLogsRequest(
            name=name, page_size=page_size, page_token=page_token, attempt=attempt
        )
        return await self._read(self._runs.GetTrainingRunLogs, request, timeout)

    async def watch(
        self, run_name: str, resume_token: str = "", *, timeout: float | None = None
    ) -> AsyncGenerator[training_run_pb2.WatchTrainingRunResponse, None]:
        """Events of one run from ``resume_token`` on, ending after the terminal state_changed event.

        A dropped stream (UNAVAILABLE, or an end before the terminal event) is reopened from the last resume
        token after a backoff; ``retry.max_attempts`` failures in a row without a new event raise
        ``RavenError``.
        Events at or below the last seen sequence are skipped, so a server that replays inclusively yields no
        duplicates. ``timeout`` bounds each connection (None: a watch lasts as long as the run).
        """
        token = resume_token
        last_sequence = 0
        failures = 0
        while True:
            request = training_run_pb2.WatchTrainingRunRequest(name=run_name, resume_token=token)
            call = self._runs.WatchTrainingRun(request, timeout=timeout, metadata=self.metadata())
            problem = "the stream ended before the terminal event"
            try:
                async for response in call:
                    failures = 0
                    sequence = response.event.sequence
                    if sequence and sequence <= last_sequence:
                        continue
                    last_sequence = max(last_sequence, sequence)
                    token = response.resume_token or token
                    yield response
                    if is_terminal_event(response):
                        return
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in STREAM_RETRY_CODES:
                    raise RavenError.from_rpc_error(exc) from exc
                problem = f"{exc.code().name}: {exc.details()}"
            finally:
                call.cancel()
            failures += 1
            if failures >= self.retry.max_attempts:
                raise RavenError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"watch of {run_name} lost after {failures} tries ({problem}); resume token {token!r}",
                )
            await asyncio.sleep(self.retry.backoff(failures))

    async def watch_all(
        self,
        *,
        states: Iterable[types_pb2.RunState | str] = (),
        owner: str = "",
        dataset: str = "",
        model_template: str = "",
    ) -> AsyncGenerator[training_run_pb2.WatchTrainingRunsResponse, None]:
        """State and phase changes of every visible run; reconnects after UNAVAILABLE until the caller stops.

        Changes made while disconnected are not replayed (the RPC has no resume token): list again after a
        reconnect when completeness matters.
        """
        request = training_run_pb2.WatchTrainingRunsRequest(
            states=list(states), owner=owner, dataset=dataset, model_template=model_template
        )
        failures = 0
        while True:
            call = self._runs.WatchTrainingRuns(request, metadata=self.metadata())
            problem = "the stream ended"
            try:
                async for response in call:
                    failures = 0
                    yield response
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in STREAM_RETRY_CODES:
                    raise RavenError.from_rpc_error(exc) from exc
                problem = f"{exc.code().name}: {exc.details()}"
            finally:
                call.cancel()
            failures += 1
            if failures >= self.retry.max_attempts:
                raise RavenError(grpc.StatusCode.UNAVAILABLE, f"watch of all runs lost ({problem})")
            await asyncio.sleep(self.retry.backoff(failures))

    # -- trained models --------------------------------------------------------------------------------------

    async def get_model(self, name: str, *, timeout: float | None = None) -> trained_model_pb2.TrainedModel:
        return await self._read(
            self._models.GetTrainedModel, trained_model_pb2.GetTrainedModelRequest(name=name), timeout
        )

    async def list_models(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        display_name: str = "",
        published: bool | None = None,
        base_model: str = "",
        dataset: str = "",
        model_template: str = "",
        min_bbox_map: float = 0.0,
        order_by: trained_model_pb2.ModelOrderBy | str = trained_model_pb2.MODEL_ORDER_BY_UNSPECIFIED,
        owner: str = "",
        timeout: float | None = None,
    ) -> trained_model_pb2.ListTrainedModelsResponse:
        request = trained_model_pb2.ListTrainedModelsRequest(
            page_size=page_size,
            page_token=page_token,
            display_name=display_name,
            base_model=base_model,
            dataset=dataset,
            model_template=model_template,
            min_bbox_map=min_bbox_map,
            order_by=order_by,
            owner=owner,
        )
        if published is not None:
            request.published = published
        return await self._read(self._models.ListTrainedModels, request, timeout)

    async def iter_models(self, **filters: Any) -> AsyncIterator[trained_model_pb2.TrainedModel]:
        """Every model matching ``list_models`` filters, following page tokens."""
        filters.pop("page_token", None)
        token = ""
        while True:
            page = await self.list_models(page_token=token, **filters)
            for model in page.trained_models:
                yield model
            token = page.next_page_token
            if not token:
                return

    async def update_model(
        self,
        trained_model: trained_model_pb2.TrainedModel,
        update_mask: Sequence[str],
        *,
        etag: str = "",
        timeout: float | None = None,
    ) -> trained_model_pb2.TrainedModel:
        request = trained_model_pb2.UpdateTrainedModelRequest(
            trained_model=trained_model,
            update_mask=field_mask_pb2.FieldMask(paths=list(update_mask)),
            etag=etag,
        )
        return await self._write(self._models.UpdateTrainedModel, request, timeout)

    async def delete_model(self, name: str, *, etag: str = "", timeout: float | None = None) -> None:
        request = trained_model_pb2.DeleteTrainedModelRequest(name=name, etag=etag)
        await self._write(self._models.DeleteTrainedModel, request, timeout)

    async def publish_model(
        self,
        name: str,
        *,
        min_bbox_map: float = 0.0,
        require_better_than_published: bool = False,
        force: bool = False,
        timeout: float | None = None,
    ) -> trained_model_pb2.TrainedModel:
        request = trained_model_pb2.PublishTrainedModelRequest(
            name=name,
            min_bbox_map=min_bbox_map,
            require_better_than_published=require_better_than_published,
            force=force,
        )
        return await self._write(self._models.PublishTrainedModel, request, timeout)

    async def unpublish_model(
        self, name: str, *, timeout: float | None = None
    ) -> trained_model_pb2.TrainedModel:
        request = trained_model_pb2.UnpublishTrainedModelRequest(name=name)
        return await self._write(self._models.UnpublishTrainedModel, request, timeout)

    async def get_lineage(
        self, name: str, *, max_depth: int = 0, timeout: float | None = None
    ) -> trained_model_pb2.ModelLineage:
        request = trained_model_pb2.GetModelLineageRequest(name=name, max_depth=max_depth)
        return await self._read(self._models.GetModelLineage, request, timeout)

    async def get_model_statistics(
        self, name: str, *, timeout: float | None = None
    ) -> trained_model_pb2.TrainedModelStatistics:
        request = trained_model_pb2.GetTrainedModelStatisticsRequest(name=name)
        return await self._read(self._models.GetTrainedModelStatistics, request, timeout)

    async def import_model(
        self,
        *,
        display_name: str,
        config_uri: str,
        checkpoint_uri: str,
        class_names: Sequence[str] = (),
        model_template: str = "",
        description: str = "",
        request_id: str = "",
        timeout: float | None = None,
    ) -> trained_model_pb2.TrainedModel:
        """Register a root model from artifact-store keys; retried like Create (one request_id per call)."""
        request = trained_model_pb2.ImportTrainedModelRequest(
            display_name=display_name,
            description=description,
            config_uri=config_uri,
            checkpoint_uri=checkpoint_uri,
            class_names=list(class_names),
            model_template=model_template,
            request_id=request_id or str(uuid.uuid4()),
        )
        return await self._idempotent_write(self._models.ImportTrainedModel, request, timeout)

    async def download(
        self,
        model: str,
        kind: types_pb2.ArtifactKind | str,
        dest: str | Path,
        *,
        resume: bool = True,
        chunk_size: int = 0,
    ) -> DownloadResult:
        """Download an artifact to ``dest`` (a file, or a directory to use the server's filename).

        Bytes go to a ``.part`` file first; an interrupted download (this call's stream dropping, or an
        earlier process) continues from its size. The whole file is checked against the announced sha256 and
        size before it is renamed into place; a mismatch deletes the partial file, raising ``IntegrityError``.
        """

        def open_stream(offset: int) -> Any:
            request = trained_model_pb2.DownloadModelArtifactRequest(
                name=model, kind=kind, offset=offset, chunk_size=chunk_size
            )
            return self._models.DownloadModelArtifact(
                request, timeout=self.download_timeout, metadata=self.metadata()
            )

        return await download_artifact(open_stream, model, kind, Path(dest), resume=resume, retry=self.retry)
