"""EvaluationService servicer: translates protobuf ↔ commands; no business rules here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from common.auth import Permission
from common.grpc_interceptors import principal
from common.proto.raven.v1 import evaluations_pb2 as pb
from common.proto.raven.v1 import evaluations_pb2_grpc
from services.trained_model.entrypoints.evaluation_convert import evaluation_to_proto
from services.trained_model.service_layer.evaluations import CreateEvaluation, Evaluations, ListEvaluations

_SERVICE = "/raven.v1.EvaluationService/"
REQUIRED_PERMISSIONS = {
    f"{_SERVICE}CreateEvaluation": Permission.CREATE_EVALUATIONS,
    f"{_SERVICE}GetEvaluation": Permission.VIEW_EVALUATIONS,
    f"{_SERVICE}ListEvaluations": Permission.VIEW_EVALUATIONS,
    f"{_SERVICE}WatchEvaluation": Permission.VIEW_EVALUATIONS,
    f"{_SERVICE}CancelEvaluation": Permission.CANCEL_EVALUATIONS,
}
WATCH_POLL_SECONDS = 0.5


class EvaluationServicer(evaluations_pb2_grpc.EvaluationServiceServicer):
    def __init__(self, evaluations: Evaluations, watch_poll_seconds: float = WATCH_POLL_SECONDS) -> None:
        self._evaluations = evaluations
        self._poll = watch_poll_seconds

    async def CreateEvaluation(
        self, request: pb.CreateEvaluationRequest, context: grpc.aio.ServicerContext
    ) -> pb.Evaluation:
        command = CreateEvaluation(
            trained_model=request.trained_model,
            dataset_version=request.dataset_version,
            split=request.split,
            request_id=request.request_id,
        )
        return evaluation_to_proto(await self._evaluations.create(principal(), command))

    async def GetEvaluation(
        self, request: pb.GetEvaluationRequest, context: grpc.aio.ServicerContext
    ) -> pb.Evaluation:
        return evaluation_to_proto(await self._evaluations.get(principal(), request.name))

    async def ListEvaluations(
        self, request: pb.ListEvaluationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListEvaluationsResponse:
        query = ListEvaluations(
            page_size=request.page_size,
            page_token=request.page_token,
            trained_model=request.trained_model,
            dataset_version=request.dataset_version,
            split=request.split,
            states=tuple(int(s) for s in request.states),
        )
        page = await self._evaluations.list(principal(), query)
        return pb.ListEvaluationsResponse(
            evaluations=[evaluation_to_proto(e) for e in page.evaluations],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )

    async def WatchEvaluation(
        self, request: pb.WatchEvaluationRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Evaluation]:
        """The evaluation now, then on every change (its revision), until a final state."""
        who = principal()
        seen = -1
        while True:
            evaluation = await self._evaluations.get(who, request.name)
            if evaluation.revision != seen:
                seen = evaluation.revision
                yield evaluation_to_proto(evaluation)
            if evaluation.state.final:
                return
            await asyncio.sleep(self._poll)

    async def CancelEvaluation(
        self, request: pb.CancelEvaluationRequest, context: grpc.aio.ServicerContext
    ) -> pb.Evaluation:
        return evaluation_to_proto(await self._evaluations.cancel(principal(), request.name, request.reason))
