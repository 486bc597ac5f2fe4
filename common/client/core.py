# ruff: noqa: ASYNC109 - ``timeout`` is the gRPC deadline handed to each call, not an asyncio timeout.
"""The plumbing ``RavenClient`` is built on: channels, metadata, deadlines and retries of unary calls."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from common.client.errors import RavenError
from common.client.retry import NO_RETRY, READ_RETRY_CODES, WRITE_RETRY_CODES, Failures, RetryPolicy
from common.proto.raven.v1 import datasets_pb2_grpc, trained_model_pb2_grpc, training_run_pb2_grpc
from common.tls import ClientTLS, aio_channel

TokenSource = str | Callable[[], str] | None

NO_CODES: frozenset[grpc.StatusCode] = frozenset()

# Keepalive lets a long watch notice a dead connection (the servers permit pings every 10 s without data).
DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
)


class ClientCore:
    """Lazily created channels to both services and the unary call helpers (args: see ``RavenClient``)."""

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
        tls: ClientTLS | None = None,
    ) -> None:
        self._addrs = (training_run_addr, trained_model_addr)
        self._token = token
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.download_timeout = download_timeout
        self._options = list(channel_options)
        self.tls = tls
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()

    # -- plumbing --------------------------------------------------------------------------------------------

    def _channel(self, addr: str) -> grpc.aio.Channel:
        # Created lazily so the channel binds to the event loop that uses it.
        if addr not in self._channels:
            self._channels[addr] = aio_channel(addr, self.tls, self._options)
        return self._channels[addr]

    @property
    def _runs(self) -> training_run_pb2_grpc.TrainingRunServiceStub:
        return training_run_pb2_grpc.TrainingRunServiceStub(self._channel(self._addrs[0]))

    @property
    def _datasets(self) -> datasets_pb2_grpc.DatasetServiceStub:
        # DatasetService is served by the training_run server.
        return datasets_pb2_grpc.DatasetServiceStub(self._channel(self._addrs[0]))

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
        failures = Failures(self.retry if retry_on else NO_RETRY)
        request_id = uuid.uuid4().hex
        while True:
            try:
                return await method(
                    request, timeout=timeout or self.timeout, metadata=self.metadata(request_id)
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in retry_on or not await failures.failed():
                    raise RavenError.from_rpc_error(exc) from exc

    async def _read(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        return await self._unary(method, request, retry_on=READ_RETRY_CODES, timeout=timeout)

    async def _write(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        return await self._unary(method, request, retry_on=NO_CODES, timeout=timeout)

    async def _idempotent_write(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        return await self._unary(method, request, retry_on=WRITE_RETRY_CODES, timeout=timeout)
