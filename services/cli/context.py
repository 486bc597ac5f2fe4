"""What every command shares: global options, the token, running a coroutine with a client, error exits."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

import typer
from google.protobuf.message import Message

from common.auth import USER_PERMISSIONS, mint_token
from common.client import RavenClient, RavenError
from common.settings import Settings
from common.tls import ClientTLS
from services.cli.render import print_json, show

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, Any]], Any]

ERROR_EXIT = 2
DEV_SUBJECT_ENV = "RAVEN_SUBJECT"


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


class CliError(Exception):
    """A problem the user can fix (missing token, bad flag combination); printed without a traceback."""


@dataclass
class CliConfig:
    training_run_addr: str
    trained_model_addr: str
    token: str
    output: OutputFormat
    timeout: float
    # How coroutines run: asyncio.run, or (tests) one that uses the loop of their in-process servers.
    runner: Runner = field(default=asyncio.run)
    tls: ClientTLS | None = None  # None: plaintext

    @property
    def json(self) -> bool:
        return self.output == OutputFormat.json

    def resolved_token(self) -> str:
        """--token / RAVEN_TOKEN, else a dev token minted from the local secret (RAVEN_JWT_SECRET)."""
        if self.token:
            return self.token
        settings = Settings()
        if not (settings.jwt_secret or settings.jwt_private_key):
            raise CliError(
                "no token: pass --token, set RAVEN_TOKEN, or set RAVEN_JWT_SECRET to mint a local dev token"
            )
        return mint_token(
            dev_subject(),
            USER_PERMISSIONS,
            secret=settings.jwt_secret,
            private_key=settings.jwt_private_key,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )

    def client(self) -> RavenClient:
        return RavenClient(
            self.training_run_addr,
            self.trained_model_addr,
            token=self.resolved_token(),
            timeout=self.timeout,
            tls=self.tls,
        )


def dev_subject() -> str:
    return os.environ.get(DEV_SUBJECT_ENV) or "dev"


def config_of(ctx: typer.Context) -> CliConfig:
    config = ctx.find_object(CliConfig)
    if config is None:  # a command invoked without the app callback (never from the console script)
        raise CliError("ravenctl was not initialised")
    return config


def fail(message: str, details: list[str] | None = None) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    for line in details or []:
        typer.echo(f"  - {line}", err=True)
    return typer.Exit(ERROR_EXIT)


def report(exc: RavenError | CliError | OSError, hints: list[str] | None = None) -> typer.Exit:
    """``error: <CODE>: <message>`` and one ``  - <field>: <description>`` per violation; exit code 2."""
    if isinstance(exc, RavenError):
        return fail(
            f"{exc.code.name}: {exc.message}",
            [f"{v.field}: {v.description}" for v in exc.violations] + (hints or []),
        )
    return fail(str(exc))


def connection_hints(exc: RavenError | CliError | OSError, tls: ClientTLS | None) -> list[str]:
    """A refused TLS handshake only says "Socket closed": name the TLS options that may be missing."""
    if not isinstance(exc, RavenError) or "failed to connect" not in exc.message:
        return []
    if tls is None:
        return ["ravenctl spoke plaintext: if the servers use TLS, pass their CA with --ca-file"]
    if not tls.cert_file:
        return ["if the servers require client certificates (mTLS), pass --client-cert and --client-key"]
    return []


def call(ctx: typer.Context, work: Callable[[RavenClient], Awaitable[T]]) -> T:
    """Run ``work`` with a client on the configured runner; known failures become a message, exit code 2."""
    config = config_of(ctx)

    async def session() -> T:
        async with config.client() as client:
            return await work(client)

    try:
        return config.runner(session())  # type: ignore[no-any-return]
    except (RavenError, CliError, OSError) as exc:
        raise report(exc, connection_hints(exc, config.tls)) from None


def run_name(value: str) -> str:
    """Accept ``trainingRuns/{id}`` or a bare id."""
    return value if "/" in value else f"trainingRuns/{value}"


def model_name(value: str) -> str:
    """Accept ``trainedModels/{id}`` or a bare id."""
    return value if "/" in value else f"trainedModels/{value}"


def emit(ctx: typer.Context, data: Message | dict[str, Any], *renderables: Any) -> None:
    """``data`` as JSON with --output json, else the rich renderables (tables, trees, text)."""
    if config_of(ctx).json:
        print_json(data)
    else:
        show(*renderables)
