"""``ravenctl models alias set|remove``: a family's aliases (MLflow style). ``champion`` is moved by
``models publish`` only (through the champion gate)."""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli.context import call, emit, model_name

app = typer.Typer(help="Aliases of a model family (display name): one model per alias.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="trainedModels/{id} or just the id")]
Alias = Annotated[str, typer.Argument(help="a-z, 0-9, '-', '_' (champion moves by publish only)")]


@app.command("set")
def set_alias(ctx: typer.Context, name: Name, alias: Alias) -> None:
    """Point the alias of the model's family at the model (the model holding it loses it)."""
    model = call(ctx, lambda client: client.set_model_alias(model_name(name), alias))
    emit(ctx, model, f"{alias} → {model.name} ({model.display_name} v{model.version})")


@app.command("remove")
def remove_alias(ctx: typer.Context, name: Name, alias: Alias) -> None:
    """Remove an alias from the model."""
    model = call(ctx, lambda client: client.delete_model_alias(model_name(name), alias))
    emit(ctx, model, f"removed {alias} from {model.name}")
