"""``ravenctl``: typer app wiring the global options, ``runs``, ``models`` and ``token``."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from common.auth import USER_PERMISSIONS, Permission, mint_token
from common.settings import Settings
from services.cli import discovery, models, runs
from services.cli.context import CliConfig, OutputFormat, config_of, dev_subject, fail
from services.cli.render import print_json

app = typer.Typer(
    name="ravenctl",
    help="Drive the Raven training services: training runs and trained models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals would print the bearer token
)
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
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
    )


def _permissions(names: list[str], all_user: bool, worker: bool, superadmin: bool) -> list[str]:
    chosen: set[str] = set(USER_PERMISSIONS) if all_user else set()
    by_name = {p.name.lower(): p.value for p in Permission} | {p.value: p.value for p in Permission}
    for name in names:
        if name.lower() not in by_name:
            raise fail(f"unknown permission {name!r}; choose from {', '.join(p.value for p in Permission)}")
        chosen.add(by_name[name.lower()])
    if worker:
        chosen.add(Permission.WORKER.value)
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
    subject: Annotated[str, typer.Option(help="owner id (default: $RAVEN_SUBJECT or 'dev')")] = "",
    permission: Annotated[
        list[str],
        typer.Option("--permission", "-p", help="e.g. models.publish or PUBLISH_MODELS (repeatable)"),
    ] = [],  # noqa: B006
    all_user: Annotated[
        bool, typer.Option("--all", help="every user permission (not superadmin, not worker)")
    ] = False,
    worker: Annotated[bool, typer.Option(help="the worker service identity")] = False,
    superadmin: Annotated[bool, typer.Option(help="bypasses every permission check")] = False,
    ttl: Annotated[float, typer.Option(help="lifetime, seconds")] = 3600,
) -> None:
    """Mint a dev token from the local secret (RAVEN_JWT_SECRET or RAVEN_JWT_PRIVATE_KEY)."""
    settings = Settings()
    if not (settings.jwt_secret or settings.jwt_private_key):
        raise fail("set RAVEN_JWT_SECRET (or RAVEN_JWT_PRIVATE_KEY) to mint tokens")
    permissions = _permissions(permission, all_user, worker, superadmin)
    who = subject or dev_subject()
    minted = mint_token(
        who,
        permissions,
        secret=settings.jwt_secret,
        private_key=settings.jwt_private_key,
        ttl_seconds=ttl,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    if config_of(ctx).json:
        print_json({"token": minted, "subject": who, "permissions": permissions, "expires_in": int(ttl)})
    else:
        typer.echo(minted)  # never through rich: a wrapped token is a broken token


if __name__ == "__main__":
    app()
