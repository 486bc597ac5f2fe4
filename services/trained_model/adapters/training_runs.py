"""What trained_model needs to know from the training_run service, behind an interface.

Delete must never proceed blindly: when training_run cannot answer, the question fails with ``Unavailable``.
"""

from __future__ import annotations

import abc

import grpc

from common.auth import Permission, mint_token
from common.errors import Unavailable
from common.proto.raven.v1 import training_run_pb2, training_run_pb2_grpc, types_pb2

SERVICE_SUBJECT = "service:trained-model"
ACTIVE_STATES = (types_pb2.PENDING, types_pb2.RUNNING, types_pb2.CANCELLING)


class TrainingRunQueries(abc.ABC):
    @abc.abstractmethod
    async def has_active_runs(self, base_model_name: str) -> bool:
        """True when a pending, running or cancelling run uses the model as its base."""

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
    ) -> None:
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = training_run_pb2_grpc.TrainingRunServiceStub(self._channel)
        self._address = address
        self._secret = secret
        self._private_key = private_key
        self._audience = audience
        self._issuer = issuer
        self._timeout = timeout

    def _token(self) -> str:
        return mint_token(
            SERVICE_SUBJECT,
            [Permission.VIEW_TRAINING_RUNS, Permission.VIEW_ALL_TRAINING_RUNS],
            secret=self._secret,
            private_key=self._private_key,
            ttl_seconds=300,
            audience=self._audience,
            issuer=self._issuer,
        )

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

    async def close(self) -> None:
        await self._channel.close()
