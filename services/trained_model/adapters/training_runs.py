"""What trained_model needs to know from the training_run service, behind an interface.

Delete must never proceed blindly: when training_run cannot answer, the question fails with ``Unavailable``
(``training_run_caller``).
"""

from __future__ import annotations

import abc
import functools

from common.auth import Permission
from common.proto.raven.v1 import training_run_pb2, training_run_pb2_grpc, types_pb2
from services.trained_model.adapters.training_run_caller import TrainingRunCaller

ACTIVE_STATES = (types_pb2.PENDING, types_pb2.RUNNING, types_pb2.CANCELLING)


class TrainingRunQueries(abc.ABC):
    @abc.abstractmethod
    async def has_active_runs(self, base_model_name: str) -> bool:
        """True when a pending, running or cancelling run uses the model as its base."""

    @abc.abstractmethod
    async def run_owner(self, run_id: str) -> str | None:
        """The owner (subject) of run ``run_id``; None when there is no such run."""

    @abc.abstractmethod
    async def cancel_won(self, run_id: str) -> bool:
        """True when the run is CANCELLING or CANCELLED: a completion reported now must not become a model."""

    async def close(self) -> None:
        return None


class GrpcTrainingRunQueries(TrainingRunCaller, TrainingRunQueries):
    """Asks ``ListTrainingRuns``/``GetTrainingRun`` as the service (view and view_all training runs)."""

    permissions = (Permission.VIEW_TRAINING_RUNS, Permission.VIEW_ALL_TRAINING_RUNS)

    @functools.cached_property
    def _stub(self) -> training_run_pb2_grpc.TrainingRunServiceStub:
        return training_run_pb2_grpc.TrainingRunServiceStub(self._channel)

    async def has_active_runs(self, base_model_name: str) -> bool:
        request = training_run_pb2.ListTrainingRunsRequest(
            base_model=base_model_name, states=list(ACTIVE_STATES), page_size=1
        )
        response: training_run_pb2.ListTrainingRunsResponse = await self._ask(
            self._stub.ListTrainingRuns,
            request,
            what=f"cannot check the training runs that use {base_model_name}",
            consequence="nothing was deleted",
        )
        return bool(response.training_runs) or response.total_size > 0

    async def run_owner(self, run_id: str) -> str | None:
        run = await self._get(run_id, f"cannot check who owns run {run_id}", "nothing was imported")
        return run.owner if run else None

    async def cancel_won(self, run_id: str) -> bool:
        run = await self._get(
            run_id, f"cannot check the state of run {run_id}", "its model is not registered"
        )
        return run is not None and run.state in (types_pb2.CANCELLING, types_pb2.CANCELLED)

    async def _get(self, run_id: str, what: str, consequence: str) -> training_run_pb2.TrainingRun | None:
        request = training_run_pb2.GetTrainingRunRequest(name=f"trainingRuns/{run_id}")
        run: training_run_pb2.TrainingRun | None = await self._find(
            self._stub.GetTrainingRun, request, what=what, consequence=consequence
        )
        return run
