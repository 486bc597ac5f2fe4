# ruff: noqa: ASYNC109 - ``timeout`` is the gRPC deadline handed to each call, not an asyncio timeout.
"""``RavenClient``: typed async access to TrainingRunService, TrainedModelService and DatasetService.

Every unary call carries a deadline and bearer-token metadata; calls that are safe to repeat (reads, and
Create/Import because they carry a ``request_id``) are retried with exponential backoff and jitter. Streams
(``watch``, ``watch_all``, ``download``) reconnect by themselves where they can continue without loss.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from contextlib import aclosing
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from common.client.core import TokenSource
from common.client.datasets import DatasetMethods
from common.client.errors import RavenError
from common.client.evaluations import EvaluationMethods
from common.client.models import TrainedModelMethods
from common.client.retry import Failures
from common.client.streams import STREAM_RETRY_CODES, resumable_watch
from common.proto.raven.v1 import training_run_pb2, types_pb2
from common.settings import Settings
from common.tls import ClientTLS

TERMINAL_STATES = frozenset({types_pb2.SUCCEEDED, types_pb2.FAILED, types_pb2.CANCELLED})


def is_terminal_event(response: training_run_pb2.WatchTrainingRunResponse) -> bool:
    """The server ends a watch after the state_changed event into SUCCEEDED, FAILED or CANCELLED."""
    event = response.event
    return event.HasField("state_changed") and event.state_changed.to_state in TERMINAL_STATES


class RavenClient(TrainedModelMethods, DatasetMethods, EvaluationMethods):
    """Async client of both services; use as ``async with RavenClient(...) as client``.

    Args:
        training_run_addr: ``host:port`` of TrainingRunService.
        trained_model_addr: ``host:port`` of TrainedModelService.
        token: a bearer JWT, a callable returning one per call, or None (no authorization metadata).
        timeout: default deadline of every unary call attempt, seconds.
        retry: policy of idempotent unary calls and of stream reconnects (failures in a row without progress).
        download_timeout: deadline of one download connection, seconds.
        tls: root CA (and client certificate) for TLS servers; None = plaintext.
    """

    @classmethod
    def from_settings(cls, settings: Settings, *, token: TokenSource = None, **kwargs: Any) -> RavenClient:
        """Addresses and TLS (``RAVEN_TLS_CA_FILE``, client cert/key) from the settings."""
        kwargs.setdefault("tls", ClientTLS.from_settings(settings))
        return cls(settings.training_run_addr, settings.trained_model_addr, token=token, **kwargs)

    async def __aenter__(self) -> RavenClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

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

    # -- discovery -------------------------------------------------------------------------------------------

    async def list_model_templates(
        self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> training_run_pb2.ListModelTemplatesResponse:
        """The templates a run may use, with defaults and valid ranges (the ones Create checks)."""
        request = training_run_pb2.ListModelTemplatesRequest(page_size=page_size, page_token=page_token)
        return await self._read(self._runs.ListModelTemplates, request, timeout)

    async def iter_model_templates(self) -> AsyncIterator[training_run_pb2.ModelTemplate]:
        token = ""
        while True:
            page = await self.list_model_templates(page_token=token)
            for template in page.model_templates:
                yield template
            token = page.next_page_token
            if not token:
                return

    async def get_model_template(
        self, name: str, *, timeout: float | None = None
    ) -> training_run_pb2.ModelTemplate:
        """``name`` is ``modelTemplates/{id}`` or just the id."""
        full = name if "/" in name else f"modelTemplates/{name}"
        request = training_run_pb2.GetModelTemplateRequest(name=full)
        return await self._read(self._runs.GetModelTemplate, request, timeout)

    async def list_workers(
        self, *, seen_within: float = 0, timeout: float | None = None
    ) -> training_run_pb2.ListWorkersResponse:
        """Workers seen in the last ``seen_within`` seconds (0: the server's default, 5 minutes) and the queue
        per capability; needs the training_runs.view_all claim."""
        request = training_run_pb2.ListWorkersRequest()
        if seen_within:
            request.seen_within.FromTimedelta(timedelta(seconds=seen_within))
        return await self._read(self._runs.ListWorkers, request, timeout)

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

        def open_call(token: str) -> Any:
            request = training_run_pb2.WatchTrainingRunRequest(name=run_name, resume_token=token)
            return self._runs.WatchTrainingRun(request, timeout=timeout, metadata=self.metadata())

        stream = resumable_watch(
            open_call,
            resume_token=resume_token,
            retry=self.retry,
            is_terminal=is_terminal_event,
            sequence_of=lambda r: r.event.sequence,
            label=f"watch of {run_name}",
        )
        async with aclosing(stream):  # the caller's aclose() reaches the open call at once
            async for response in stream:
                yield response

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
        failures = Failures(self.retry)
        while True:
            call = self._runs.WatchTrainingRuns(request, metadata=self.metadata())
            problem = "the stream ended"
            try:
                async for response in call:
                    failures.reset()
                    yield response
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in STREAM_RETRY_CODES:
                    raise RavenError.from_rpc_error(exc) from exc
                problem = f"{exc.code().name}: {exc.details()}"
            finally:
                call.cancel()
            if not await failures.failed():
                raise RavenError(grpc.StatusCode.UNAVAILABLE, f"watch of all runs lost ({problem})")
