"""trained_model's one way of asking the training_run service: channel, service identity, deadline, errors.

training_run owns runs and dataset versions; trained_model never reads its tables. Every question is asked
with a short-lived service identity token (subject ``service:trained-model``, only the permissions the
caller names) minted from the shared secret or private key. When training_run cannot answer, the question
fails with ``Unavailable`` naming what could not be checked and what was therefore not done: nothing
proceeds blindly. A missing resource (NOT_FOUND, or a name training_run refuses as INVALID_ARGUMENT) is
``None`` where the caller asks for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import grpc

from common.auth import Permission, ServiceToken
from common.errors import Unavailable
from common.tls import ClientTLS, aio_channel

SERVICE_SUBJECT = "service:trained-model"
MISSING = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)

Reply = TypeVar("Reply")


class TrainingRunCaller:
    """Base of trained_model's gRPC callers of training_run: one channel, one token, one error mapping.

    A subclass names the permissions its token carries and builds its stub on ``self._channel``.
    """

    permissions: ClassVar[tuple[Permission, ...]] = ()

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
        self._address = address
        self._token = ServiceToken(
            SERVICE_SUBJECT,
            list(self.permissions),
            secret=secret,
            private_key=private_key,
            audience=audience,
            issuer=issuer,
        )
        self._timeout = timeout

    async def _ask(
        self, method: Callable[..., Awaitable[Reply]], request: Any, *, what: str, consequence: str
    ) -> Reply:
        """``method(request)`` as the service; ``Unavailable("{what} (...); {consequence}, retry later")``."""
        try:
            return await self._send(method, request)
        except grpc.aio.AioRpcError as exc:
            raise self._unavailable(exc, what, consequence) from exc

    async def _find(
        self, method: Callable[..., Awaitable[Reply]], request: Any, *, what: str, consequence: str
    ) -> Reply | None:
        """As ``_ask``, but a missing resource answers None."""
        try:
            return await self._send(method, request)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in MISSING:
                return None
            raise self._unavailable(exc, what, consequence) from exc

    async def _send(self, method: Callable[..., Awaitable[Reply]], request: Any) -> Reply:
        metadata = (("authorization", f"Bearer {self._token()}"),)
        return await method(request, metadata=metadata, timeout=self._timeout)

    def _unavailable(self, exc: grpc.aio.AioRpcError, what: str, consequence: str) -> Unavailable:
        return Unavailable(
            f"{what} (training_run at {self._address} answered {exc.code().name}: {exc.details()}); "
            f"{consequence}, retry later"
        )

    async def close(self) -> None:
        await self._channel.close()
