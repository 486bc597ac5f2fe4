"""What trained_model needs to know from the training_run service, behind an interface.

Delete must never proceed blindly: when training_run cannot answer, the question fails with ``Unavailable``.
"""

from __future__ import annotations

import abc

import grpc

from common.auth import Permission, ServiceToken
from common.errors import Unavailable
from common.proto.raven.v1 import training_run_pb2, training_run_pb2_grpc, types_pb2
from common.tls import ClientTLS, aio_channel

SERVICE_SUBJECT = "service:trained-model"
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


class GrpcTrainingRunQueries(TrainingRunQueries):
    """Asks ``ListTrainingRuns`` with a short-lived service identity token minted from the shared secret."""

    def __init__(
        self,
        address: str,
        *,
        secret: str = "",
        private_key: str = "",
        audience: str = "raven",
        issuer: str = "raven",
        timeout: float = 5.0,
        tls: ClientTLS | None = None,
    ) -> None:
        self._channel = aio_channel(address, tls)
        self._stub = training_run_pb2_grpc.TrainingRunServiceStub(self._channel)
        self._address = address
        self._token = ServiceToken(
            SERVICE_SUBJECT,
            [Permission.VIEW_TRAINING_RUNS, Permission.VIEW_ALL_TRAINING_RUNS],
            secret=secret,
            private_key=private_key,
            audience=audience,
            issuer=issuer,
        )
        self._timeout = timeout

    async def has_active_runs(self, base_model_name: str) -> bool:
        request = training_run_pb2.ListTrainingRunsRequest(
            base_model=base_model_name, states=list(ACTIVE_STATES), page_size=1
        )
        try:
            response = await self._stub.ListTrainingRuns(
                request, metadata=(("authorization", f"Bearer {self._token()}"),), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(
                f"cannot check the training runs that use {base_model_name} (training_run at {self._address} "
                f"answered {exc.code().name}: {exc.details()}); nothing was deleted, retry later"
            ) from exc
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
        try:
            run: training_run_pb2.TrainingRun = await self._stub.GetTrainingRun(
                request, metadata=(("authorization", f"Bearer {self._token()}"),), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise Unavailable(
                f"{what} (training_run at {self._address} answered {exc.code().name}); {consequence}, "
                "retry later"
            ) from exc
        return run

    async def close(self) -> None:
        await self._channel.close()
