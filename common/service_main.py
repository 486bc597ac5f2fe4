"""Shared ``python -m services.<name> [serve|migrate]`` entrypoint logic."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from common.grpc_server import run_until_signalled, start_metrics_endpoint
from common.logging import configure_logging, get_logger
from common.settings import Settings


class _App(Protocol):
    server: Any

    async def close(self, grace: float = 0) -> None: ...


def main(
    service: str,
    build_app: Callable[[Settings], Awaitable[_App]],
    migrate: Callable[[Settings], Coroutine[Any, Any, None]],
    argv: list[str] | None = None,
) -> int:
    args = sys.argv[1:] if argv is None else argv
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json, cache=True)
    log = get_logger(service)
    command = args[0] if args else "serve"
    if command == "migrate":
        asyncio.run(migrate(settings))
        log.info("migrated", database=settings.database_url_for(service).split("@")[-1])
        return 0
    if command != "serve":
        print(f"usage: python -m services.{service} [serve|migrate]", file=sys.stderr)
        return 2

    async def serve() -> None:
        app = await build_app(settings)
        start_metrics_endpoint(settings.metrics_port)

        await run_until_signalled(app.server, settings.shutdown_grace_seconds, app.close)

    asyncio.run(serve())
    return 0
