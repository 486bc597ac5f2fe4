"""gRPC server bootstrap: interceptors, health, reflection, metrics endpoint, graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from common.auth import TokenVerifier
from common.grpc_interceptors import RpcInterceptor
from common.logging import get_logger
from common.tls import ServerTLS

log = get_logger("server")


@dataclass
class ServiceRegistration:
    """A servicer with its ``add_*Servicer_to_server`` function and full service name."""

    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    service_name: str
    required_permissions: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: list[str]
    health_server: grpc.aio.Server | None = None  # plaintext, health only (kubelet probes under TLS)
    context: RpcInterceptor = field(default_factory=RpcInterceptor)

    def open_streams(self) -> dict[str, int]:
        """Streaming calls still in flight, per method (what ``stop`` waits for)."""
        return {method: n for method, n in self.context.open_streams.items() if n}

    async def set_serving(self) -> None:
        for name in ["", *self.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(0)


async def create_server(
    services: Sequence[ServiceRegistration],
    verifier: TokenVerifier,
    *,
    address: str = "[::]:0",
    extra_interceptors: Iterable[grpc.aio.ServerInterceptor] = (),
    tls: ServerTLS | None = None,
    health_port: int = 0,
) -> RunningServer:
    """Build and start a server; ``address`` with port 0 binds a free port (tests).

    With ``tls`` the port speaks only TLS (mTLS when it has a client CA). ``health_port`` adds a plaintext
    port serving nothing but grpc.health.v1, for probes that cannot speak TLS (kubelet's gRPC probe).
    """
    required: dict[str, str] = {}
    for service in services:
        required.update(service.required_permissions)
    context = RpcInterceptor(verifier, required)
    server = grpc.aio.server(
        interceptors=[context, *extra_interceptors],
        options=[
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [s.service_name for s in services]
    for service in services:
        service.add_to_server(service.servicer, server)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )
    port = server.add_secure_port(address, tls.credentials()) if tls else server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not bind gRPC address {address}")
    health_server = None
    if health_port:
        health_server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        if health_server.add_insecure_port(f"[::]:{health_port}") == 0:
            raise RuntimeError(f"could not bind the health port {health_port}")
        await health_server.start()
    await server.start()
    running = RunningServer(
        server=server,
        port=port,
        health=health_servicer,
        service_names=names,
        health_server=health_server,
        context=context,
    )
    await running.set_serving()
    return running


def start_metrics_endpoint(port: int) -> None:
    if port:
        start_http_server(port)
        log.info("metrics endpoint", port=port)


async def run_until_signalled(
    running: RunningServer, grace: float, shutdown: Callable[[float], Awaitable[None]] | None = None
) -> None:
    """Serve until SIGTERM/SIGINT, then ``shutdown(grace)`` (the app's close: health NOT_SERVING, end the
    never-ending streams, stop accepting, finish in-flight RPCs, stop its tasks); without one, just drain
    the server."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("serving", port=running.port, services=running.service_names)
    await stop.wait()
    log.info("shutting down", grace_seconds=grace)
    if shutdown is not None:
        await shutdown(grace)
    else:
        await running.stop(grace)
