"""``ravenctl runs ...``: create, list, get, cancel, delete, logs, watch, plot."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from common.client import RavenClient
from common.hyperparameters import (
    EARLY_STOPPING_DEFAULTS,
    EARLY_STOPPING_LIMITS,
    HYPERPARAMETER_LIMITS,
    RUN_LIMITS,
)
from common.proto.raven.v1 import training_run_pb2, types_pb2
from services.cli import plots
from services.cli.context import CliError, call, config_of, emit, fail, model_name, run_name
from services.cli.durations import duration_message, parse_duration
from services.cli.render import print_json, print_json_line, run_detail, runs_table, show
from services.cli.tiling_options import HELP as TILING_HELP
from services.cli.tiling_options import TilingFlags, apply_tiling
from services.cli.watching import WatchOutcome, finish, follow

app = typer.Typer(help="Training runs: create, inspect, follow and cancel them.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="trainingRuns/{id} or just the id")]
# Valid ranges as Create checks them (a template may narrow frozen_stages: ravenctl templates get NAME). An
# option left out is sent unset and takes the default; one given is sent as given, 0 included (--seed 0).
LIMITS = {
    limit.field: limit.describe() + (f", multiple of {limit.multiple_of}" if limit.multiple_of else "")
    for limit in (*HYPERPARAMETER_LIMITS, *RUN_LIMITS)
}
EARLY = {
    limit.field: "early stopping on val bbox mAP (setting either option turns it on; "
    "--early-stopping-patience 0 turns it off, also a small dataset's template default): "
    f"{limit.describe()}, "
    f"default {EARLY_STOPPING_DEFAULTS[limit.field]}"
    for limit in EARLY_STOPPING_LIMITS
}


def parse_states(values: list[str]) -> list[str]:
    states = []
    for value in values:
        if value.upper() not in types_pb2.RunState.keys()[1:]:
            choices = ", ".join(n.lower() for n in types_pb2.RunState.keys()[1:])
            raise fail(f"unknown state {value!r}; choose from {choices}")
        states.append(value.upper())
    return states


def split_classes(value: str) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()]


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="display name of the run")],
    dataset: Annotated[
        str,
        typer.Option(help="dataset reference under the dataset root, e.g. waste/v3 (or --dataset-version)"),
    ] = "",
    dataset_version: Annotated[
        str, typer.Option(help="a READY dataset version, datasets/{id}/versions/{n}: its frozen split")
    ] = "",
    template: Annotated[
        str, typer.Option(help="model template, e.g. rtmdet_tiny (see ravenctl templates list)")
    ] = "",
    base_model: Annotated[str, typer.Option(help="fine-tune from this trained model")] = "",
    classes: Annotated[str, typer.Option(help="comma-separated class names (default: the dataset's)")] = "",
    description: str = "",
    epochs: Annotated[int | None, typer.Option(help=LIMITS["epochs"])] = None,
    batch_size: Annotated[int | None, typer.Option(help=LIMITS["batch_size"])] = None,
    lr: Annotated[float | None, typer.Option(help=f"learning rate, {LIMITS['learning_rate']}")] = None,
    frozen_stages: Annotated[
        int | None, typer.Option(help=f"{LIMITS['frozen_stages']}, -1 = none frozen")
    ] = None,
    image_size: Annotated[int | None, typer.Option(help=f"square input side, {LIMITS['image_size']}")] = None,
    seed: Annotated[
        int | None, typer.Option(help=f"training seed, {LIMITS['seed']} (never moves the split)")
    ] = None,
    val_interval: Annotated[
        int | None, typer.Option(help=f"validate every N epochs, {LIMITS['val_interval']}, at most epochs")
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option(help=f"{LIMITS['max_attempts']}, worker-loss retries included")
    ] = None,
    train_fraction: Annotated[
        float | None, typer.Option(help="split fraction when the dataset has none")
    ] = None,
    val_fraction: Annotated[
        float | None, typer.Option(help="split fraction when the dataset has none")
    ] = None,
    gpus: Annotated[
        int | None,
        typer.Option(help=f"GPUs the run trains on at once, {LIMITS['gpus']}; batch size is per GPU"),
    ] = None,
    early_stopping_patience: Annotated[int | None, typer.Option(help=EARLY["patience"])] = None,
    early_stopping_min_delta: Annotated[float | None, typer.Option(help=EARLY["min_delta"])] = None,
    precision: Annotated[
        str, typer.Option(help="fp32 (default), amp_fp16 or amp_bf16 (mixed precision: CUDA workers only)")
    ] = "",
    auto_scale_lr: Annotated[
        bool | None,
        typer.Option(
            "--auto-scale-lr/--no-auto-scale-lr",
            help="scale the learning rate by gpus x batch size / the template's base batch (default on)",
        ),
    ] = None,
    max_runtime: Annotated[
        str,
        typer.Option(
            help="training time budget, e.g. 30m or 2h (1s..30d): then checkpoint, evaluate, "
            "register; queue time excluded"
        ),
    ] = "",
    max_pending: Annotated[
        str, typer.Option(help="queue time budget, e.g. 1h (1s..30d): a run no worker took by then FAILS")
    ] = "",
    tiling: Annotated[str, typer.Option(help=TILING_HELP["tiling"])] = "",
    tile_size: Annotated[int | None, typer.Option(help=TILING_HELP["tile_size"])] = None,
    tile_overlap: Annotated[int | None, typer.Option(help=TILING_HELP["tile_overlap"])] = None,
    min_box_visibility: Annotated[float | None, typer.Option(help=TILING_HELP["min_box_visibility"])] = None,
    request_id: Annotated[str, typer.Option(help="idempotency key (default: a new one per invocation)")] = "",
    validate_only: Annotated[
        bool, typer.Option(help="validate and resolve the config, create nothing")
    ] = False,
    watch: Annotated[bool, typer.Option(help="follow the run to its end (exit 0 only on SUCCEEDED)")] = False,
) -> None:
    """Create a training run. Unset hyperparameters take the template's defaults (templates get NAME).

    With --watch and --output json, stdout is JSON lines: the created run, then one line per event.
    """
    config = config_of(ctx)
    given: dict[str, Any] = {
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": lr,
        "frozen_stages": frozen_stages,
        "image_size": image_size,
        "seed": seed,
        "val_interval": val_interval,
        "max_attempts": max_attempts,
        "train_fraction": train_fraction,
        "val_fraction": val_fraction,
        "gpus": gpus,
    }
    run = training_run_pb2.TrainingRun(
        display_name=name,
        description=description,
        dataset=dataset,
        dataset_version=dataset_version,
        model_template=template,
        base_model=model_name(base_model) if base_model else "",
        class_names=split_classes(classes),
        hyperparameters=types_pb2.Hyperparameters(**{k: v for k, v in given.items() if v is not None}),
    )
    if early_stopping_patience is not None or early_stopping_min_delta is not None:
        run.hyperparameters.early_stopping.SetInParent()  # on, even with one field set (the other defaults)
        if early_stopping_patience is not None:
            run.hyperparameters.early_stopping.patience = early_stopping_patience
        if early_stopping_min_delta is not None:
            run.hyperparameters.early_stopping.min_delta = early_stopping_min_delta
    if precision:
        names = [n.lower() for n in types_pb2.Precision.keys() if n != "PRECISION_UNSPECIFIED"]
        if precision.lower() not in names:
            raise fail(f"--precision: unknown {precision!r}; choose from {', '.join(names)}")
        run.hyperparameters.precision = types_pb2.Precision.Value(precision.upper())
    if auto_scale_lr is not None:
        run.hyperparameters.auto_scale_lr = auto_scale_lr
    for field, text in (("max_runtime", max_runtime), ("max_pending", max_pending)):
        if text:
            try:
                getattr(run, field).CopyFrom(duration_message(parse_duration(text)))
            except ValueError as exc:
                raise fail(f"--{field.replace('_', '-')}: {exc}") from None
    follow_it = watch and not validate_only
    tiling_flags = TilingFlags(tiling, tile_size, tile_overlap, min_box_visibility)
    tiling_flags.check(dataset_version)

    async def work(client: RavenClient) -> WatchOutcome | None:
        await apply_tiling(client, run.hyperparameters, tiling_flags, dataset_version)
        created = await client.create_run(run, request_id=request_id, validate_only=validate_only)
        if config.json:
            (print_json_line if follow_it else print_json)(created)
        else:
            show(*run_detail(created))
        return await follow(client, created.name, "", config.json) if follow_it else None

    outcome = call(ctx, work)
    if outcome is not None:
        finish(outcome)


@app.command("list")
def list_runs(
    ctx: typer.Context,
    state: Annotated[list[str], typer.Option(help="filter by state (repeatable)")] = [],  # noqa: B006
    owner: str = "",
    dataset: str = "",
    base_model: str = "",
    template: str = "",
    page_size: Annotated[int, typer.Option(help="runs per page (server default 50)")] = 0,
    page_token: str = "",
    all_pages: Annotated[bool, typer.Option("--all", help="follow page tokens to the end")] = False,
) -> None:
    """List training runs, newest first."""
    config = config_of(ctx)
    filters: dict[str, Any] = {
        "states": parse_states(state),
        "owner": owner,
        "dataset": dataset,
        "base_model": model_name(base_model) if base_model else "",
        "model_template": template,
    }

    async def work(client: RavenClient) -> training_run_pb2.ListTrainingRunsResponse:
        if not all_pages:
            return await client.list_runs(page_size=page_size, page_token=page_token, **filters)
        runs = [run async for run in client.iter_runs(page_size=page_size, **filters)]
        return training_run_pb2.ListTrainingRunsResponse(training_runs=runs, total_size=len(runs))

    page = call(ctx, work)
    if config.json:
        print_json(page)
        return
    footer = f"{len(page.training_runs)} of {page.total_size}"
    show(
        runs_table(
            page.training_runs,
            footer + (f"; next page: {page.next_page_token}" if page.next_page_token else ""),
        )
    )


@app.command()
def get(ctx: typer.Context, name: Name) -> None:
    """Show one run: state, progress, failure, transitions."""
    run = call(ctx, lambda client: client.get_run(run_name(name)))
    emit(ctx, run, *run_detail(run))


@app.command()
def cancel(ctx: typer.Context, name: Name, reason: str = "") -> None:
    """Cancel a run (PENDING ends at once; RUNNING goes through CANCELLING)."""
    run = call(ctx, lambda client: client.cancel_run(run_name(name), reason=reason))
    emit(ctx, run, *run_detail(run))


@app.command()
def delete(ctx: typer.Context, name: Name, etag: str = "") -> None:
    """Delete a run."""
    full = run_name(name)
    call(ctx, lambda client: client.delete_run(full, etag=etag))
    if config_of(ctx).json:
        print_json({"name": full, "deleted": True})
    else:
        typer.echo(f"deleted {full}")


@app.command()
def logs(
    ctx: typer.Context,
    name: Name,
    attempt: Annotated[int, typer.Option(help="0 = latest")] = 0,
    follow_logs: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing until the log is complete")
    ] = False,
    page_size: int = 0,
    poll_seconds: Annotated[float, typer.Option(hidden=True)] = 1.0,
) -> None:
    """Print the training log. JSON: {"name", "lines", "complete"}; with --follow, one {"line"} per line."""
    config = config_of(ctx)
    full = run_name(name)

    async def work(client: RavenClient) -> tuple[list[str], bool]:
        token, skip, printed, complete = "", 0, [], False
        while True:
            page = await client.get_logs(full, page_size=page_size, page_token=token, attempt=attempt)
            fresh = list(page.lines[skip:])
            if follow_logs:
                for line in fresh:
                    if config.json:
                        print_json_line({"line": line})
                    else:
                        typer.echo(line)
            printed.extend(fresh)
            # No token once caught up: ask again with the same one, skipping the lines already seen.
            if page.next_page_token and page.next_page_token != token:
                token, skip = page.next_page_token, 0
            else:
                skip = len(page.lines)
            complete = page.complete
            if complete or (not fresh and not follow_logs):
                return printed, complete
            if not fresh:
                await asyncio.sleep(poll_seconds)

    lines, complete = call(ctx, work)
    if follow_logs:
        return
    if config.json:
        print_json({"name": full, "lines": lines, "complete": complete})
    else:
        for line in lines:
            typer.echo(line)


@app.command()
def watch(
    ctx: typer.Context,
    name: Name,
    resume_token: Annotated[str, typer.Option(help="continue after this token (from a previous watch)")] = "",
) -> None:
    """Follow a run live until it ends: exit 0 on SUCCEEDED, 1 on FAILED or CANCELLED.

    Reconnects by itself after a dropped connection. With --output json, stdout is one JSON line per event.
    """
    config = config_of(ctx)
    finish(call(ctx, lambda client: follow(client, run_name(name), resume_token, config.json)))


async def progress_history(
    client: RavenClient, name: str, idle_seconds: float
) -> list[types_pb2.ProgressSnapshot]:
    """Replay the run's events from the start; stop at its end, or when it goes quiet (run still live)."""
    snapshots: list[types_pb2.ProgressSnapshot] = []
    stream = client.watch(name)
    try:
        while True:
            try:
                response = await asyncio.wait_for(anext(stream), idle_seconds)
            except (StopAsyncIteration, TimeoutError):
                return snapshots
            if response.event.HasField("progress"):
                snapshots.append(response.event.progress.progress)
    finally:
        await stream.aclose()


@app.command()
def plot(
    ctx: typer.Context,
    name: Name,
    out: Annotated[Path | None, typer.Option(help="PNG path (default: {id}-curves.png)")] = None,
    source: Annotated[str, typer.Option(help="auto | events | model")] = "auto",
    idle_seconds: Annotated[
        float, typer.Option(help="events: stop when the replay is quiet this long")
    ] = 2.0,
) -> None:
    """Training curves PNG: its model's CURVES artifact, or drawn from the run's progress events."""
    if source not in ("auto", "events", "model"):
        raise fail(f"unknown source {source!r}; choose auto, events or model")
    full = run_name(name)
    path = out or Path(f"{full.rsplit('/', 1)[-1]}-curves.png")

    async def work(client: RavenClient) -> dict[str, object]:
        run = await client.get_run(full)
        if source != "events" and run.trained_model:
            model = await client.get_model(run.trained_model)
            if any(a.kind == types_pb2.CURVES for a in model.artifacts):
                result = await client.download(model.name, types_pb2.CURVES, path, resume=False)
                return {"path": str(result.path), "source": "model", "trained_model": model.name}
        if source == "model":
            raise CliError(f"{full} has no trained model with a CURVES artifact")
        snapshots = await progress_history(client, full, idle_seconds)
        if not snapshots:
            raise CliError(f"{full} has no progress events to plot yet")
        points = plots.plot_progress(snapshots, path, f"{run.display_name} ({full})")
        return {"path": str(path), "source": "events", "points": points}

    result = call(ctx, work)
    emit(ctx, result, f"wrote {result['path']} (from {result['source']})")
