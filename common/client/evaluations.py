# ruff: noqa: ASYNC109 - ``timeout`` is the gRPC deadline handed to each call, not an asyncio timeout.
"""``RavenClient``'s EvaluationService methods (served by the trained_model server)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import grpc

from common.client.core import ClientCore
from common.client.errors import RavenError
from common.proto.raven.v1 import evaluations_pb2, evaluations_pb2_grpc

FINAL_EVALUATION_STATES = frozenset(
    {
        evaluations_pb2.EVALUATION_STATE_SUCCEEDED,
        evaluations_pb2.EVALUATION_STATE_FAILED,
        evaluations_pb2.EVALUATION_STATE_CANCELLED,
    }
)


class EvaluationMethods(ClientCore):
    @property
    def _evaluations(self) -> evaluations_pb2_grpc.EvaluationServiceStub:
        return evaluations_pb2_grpc.EvaluationServiceStub(self._channel(self._addrs[1]))

    async def create_evaluation(
        self,
        trained_model: str,
        dataset_version: str,
        *,
        split: str = "test",
        request_id: str = "",
        timeout: float | None = None,
    ) -> evaluations_pb2.Evaluation:
        """Retried on UNAVAILABLE with one request_id (made when not given): never two evaluations."""
        request = evaluations_pb2.CreateEvaluationRequest(
            trained_model=trained_model, dataset_version=dataset_version, split=split,
            request_id=request_id or str(uuid.uuid4()),
        )  # fmt: skip
        return await self._idempotent_write(self._evaluations.CreateEvaluation, request, timeout)

    async def get_evaluation(self, name: str, *, timeout: float | None = None) -> evaluations_pb2.Evaluation:
        request = evaluations_pb2.GetEvaluationRequest(name=name)
        return await self._read(self._evaluations.GetEvaluation, request, timeout)

    async def list_evaluations(
        self,
        *,
        trained_model: str = "",
        dataset_version: str = "",
        split: str = "",
        states: Sequence[int] = (),
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> evaluations_pb2.ListEvaluationsResponse:
        request = evaluations_pb2.ListEvaluationsRequest(
            trained_model=trained_model, dataset_version=dataset_version, split=split,
            states=[evaluations_pb2.EvaluationState.ValueType(s) for s in states],
            page_size=page_size, page_token=page_token,
        )  # fmt: skip
        return await self._read(self._evaluations.ListEvaluations, request, timeout)

    async def iter_evaluations(self, **filters: object) -> AsyncIterator[evaluations_pb2.Evaluation]:
        """Every evaluation matching ``list_evaluations`` filters, newest first, following page tokens."""
        filters.pop("page_token", None)
        token = ""
        while True:
            page = await self.list_evaluations(page_token=token, **filters)  # type: ignore[arg-type]
            for evaluation in page.evaluations:
                yield evaluation
            token = page.next_page_token
            if not token:
                return

    async def cancel_evaluation(
        self, name: str, *, reason: str = "", timeout: float | None = None
    ) -> evaluations_pb2.Evaluation:
        request = evaluations_pb2.CancelEvaluationRequest(name=name, reason=reason)
        return await self._write(self._evaluations.CancelEvaluation, request, timeout)

    async def watch_evaluation(self, name: str) -> AsyncIterator[evaluations_pb2.Evaluation]:
        """The evaluation now and on every change until final; reconnects (from Get) when the stream drops."""
        failures = 0
        while True:
            try:
                async for evaluation in self._evaluations.WatchEvaluation(
                    evaluations_pb2.WatchEvaluationRequest(name=name), metadata=self.metadata()
                ):
                    failures = 0
                    yield evaluation
                    if evaluation.state in FINAL_EVALUATION_STATES:
                        return
                return
            except grpc.aio.AioRpcError as exc:
                failures += 1
                if exc.code() != grpc.StatusCode.UNAVAILABLE or failures > 5:
                    raise RavenError.from_rpc_error(exc) from exc
                await asyncio.sleep(min(5.0, 0.5 * 2**failures))
