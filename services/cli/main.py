"""``ravenctl``: typer app wiring the global options, ``runs``, ``models``, ``datasets`` and ``token``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import jwt
import typer

from common.auth import USER_PERMISSIONS, WORKER_TOKEN_TTL_SECONDS, Permission, issue_worker_token, mint_token
from common.settings import Settings
from services.cli import datasets, discovery, evaluations, models, runs
from services.cli.context import CliConfig, OutputFormat, config_of, dev_subject, fail
from services.cli.render import print_json
from services.cli.tls_options import CaFile, ClientCert, ClientKey, ServerName, client_tls

app = typer.Typer(
    name="ravenctl",
    help="Drive the Raven training services: training runs, trained models and datasets.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals would print the bearer token
)
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(datasets.app, name="datasets")
app.add_typer(evaluations.app, name="evaluations")
app.add_typer(discovery.templates_app, name="templates")
app.add_typer(discovery.workers_app, name="workers")


@app.callback()
def main(
    ctx: typer.Context,
    training_run_addr: Annotated[
        str | None, typer.Option(envvar="RAVEN_TRAINING_RUN_ADDR", help="host:port of TrainingRunService")
    ] = None,
    trained_model_addr: Annotated[
        str | None, typer.Option(envvar="RAVEN_TRAINED_MODEL_ADDR", help="host:port of TrainedModelService")
    ] = None,
    token: Annotated[
        str,
        typer.Option(
            envvar="RAVEN_TOKEN",
            show_default=False,
            help="bearer JWT; without it one is minted from RAVEN_JWT_SECRET (local dev)",
        ),
    ] = "",
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="table for people, json for scripts")
    ] = (OutputFormat.table),
    timeout: Annotated[
        float, typer.Option(envvar="RAVEN_TIMEOUT", help="deadline of each call, seconds")
    ] = 10.0,
    ca_file: CaFile = "",
    client_cert: ClientCert = "",
    client_key: ClientKey = "",
    tls_server_name: ServerName = "",
) -> None:
    settings = Settings() if not (training_run_addr and trained_model_addr) else None
    # A caller may hand in the coroutine runner as ctx.obj (tests: their servers' loop); else asyncio.run.
    runner = ctx.obj if callable(ctx.obj) else asyncio.run
    ctx.obj = CliConfig(
        training_run_addr=training_run_addr or (settings.training_run_addr if settings else ""),
        trained_model_addr=trained_model_addr or (settings.trained_model_addr if settings else ""),
        token=token,
        output=output,
        timeout=timeout,
        runner=runner,
        tls=client_tls(ca_file, client_cert, client_key, tls_server_name),
    )


def _permissions(names: list[str], all_user: bool, superadmin: bool) -> list[str]:
    chosen: set[str] = set(USER_PERMISSIONS) if all_user else set()
    by_name = {p.name.lower(): p.value for p in Permission} | {p.value: p.value for p in Permission}
    for name in names:
        if name.lower() not in by_name:
            raise fail(f"unknown permission {name!r}; choose from {', '.join(p.value for p in Permission)}")
        chosen.add(by_name[name.lower()])
    if Permission.WORKER.value in chosen:
        raise fail("the worker permission comes only alone, in a worker token: use --worker")
    if superadmin:
        chosen.add(Permission.SUPERADMIN.value)
    if not chosen:
        raise fail(
            "choose the token's permissions: --permission (repeatable), --all, --worker or --superadmin"
        )
    return sorted(chosen)


@app.command()
def token(
    ctx: typer.Context,
    subject: Annotated[
        str, typer.Option(help="owner id (default: $RAVEN_SUBJECT or 'dev'; 'worker' for --worker)")
    ] = "",
    permission: Annotated[
        list[str],
        typer.Option("--permission", "-p", help="e.g. models.publish or PUBLISH_MODELS (repeatable)"),
    ] = [],  # noqa: B006
    all_user: Annotated[
        bool, typer.Option("--all", help="every user permission (not superadmin, not worker)")
    ] = False,
    worker: Annotated[
        bool, typer.Option(help="a worker token: only the worker RPCs; hand it to workers, never the key")
    ] = False,
    superadmin: Annotated[bool, typer.Option(help="bypasses every permission check")] = False,
    ttl: Annotated[
        float | None,
        typer.Option(help=f"lifetime, seconds (default 3600; {WORKER_TOKEN_TTL_SECONDS} for --worker)"),
    ] = None,
) -> None:
    """Mint a token with the signing key (RAVEN_JWT_SECRET or RAVEN_JWT_PRIVATE_KEY).

    Operators issue worker tokens with it: `ravenctl token --worker --ttl 2592000 > worker.token`.
    """
    settings = Settings()
    if not (settings.jwt_secret or settings.jwt_private_key):
        raise fail("set RAVEN_JWT_SECRET (or RAVEN_JWT_PRIVATE_KEY) to mint tokens")
    if worker and (permission or all_user or superadmin):
        raise fail("a worker token holds only the worker permission: drop --permission/--all/--superadmin")
    if ttl is not None and ttl <= 0:
        raise fail("--ttl must be a positive number of seconds")
    keys = dict(
        secret=settings.jwt_secret,
        private_key=settings.jwt_private_key,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    if worker:
        permissions = [Permission.WORKER.value]
        who = subject or "worker"
        lifetime = WORKER_TOKEN_TTL_SECONDS if ttl is None else ttl
        minted = issue_worker_token(who, ttl_seconds=lifetime, **keys)
    else:
        permissions = _permissions(permission, all_user, superadmin)
        who = subject or dev_subject()
        lifetime = 3600 if ttl is None else ttl
        minted = mint_token(who, permissions, ttl_seconds=lifetime, **keys)
    if config_of(ctx).json:
        claims = jwt.decode(minted, options={"verify_signature": False})
        print_json(
            {
                "token": minted,
                "subject": who,
                "permissions": permissions,
                "token_id": claims["jti"],
                "expires_in": int(lifetime),
                "expire_time": datetime.fromtimestamp(claims["exp"], UTC).isoformat(),
            }
        )
    else:
        typer.echo(minted)  # never through rich: a wrapped token is a broken token


if __name__ == "__main__":
    app()
