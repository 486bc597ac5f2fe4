"""The fake EvaluationService of the ravenctl tests (see fakes.py): evaluations a test adds, listed newest
first with the real filters' meaning (model, version, split, states)."""

from __future__ import annotations

from typing import Any

from common import errors
from common.proto.raven.v1 import evaluations_pb2, evaluations_pb2_grpc


class FakeEvaluations(evaluations_pb2_grpc.EvaluationServiceServicer):
    def __init__(self) -> None:
        self.evaluations: list[evaluations_pb2.Evaluation] = []

    def add(self, evaluation: evaluations_pb2.Evaluation) -> evaluations_pb2.Evaluation:
        self.evaluations.append(evaluation)
        return evaluation

    async def GetEvaluation(self, request: Any, context: Any) -> evaluations_pb2.Evaluation:
        for evaluation in self.evaluations:
            if evaluation.name == request.name:
                return evaluation
        raise errors.NotFound(f"{request.name} does not exist")

    async def ListEvaluations(self, request: Any, context: Any) -> evaluations_pb2.ListEvaluationsResponse:
        found = [
            e for e in reversed(self.evaluations)
            if (not request.trained_model or e.trained_model == request.trained_model)
            and (not request.dataset_version or e.dataset_version == request.dataset_version)
            and (not request.split or e.split == request.split)
            and (not request.states or e.state in request.states)
        ]  # fmt: skip
        return evaluations_pb2.ListEvaluationsResponse(evaluations=found, total_size=len(found))
