"""``ravenctl evaluations ...``: create, get, list, watch, cancel (EvaluationService on the trained_model
server)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from common.client import RavenClient
from common.inference_settings import describe, record_from_proto
from common.proto.raven.v1 import evaluations_pb2 as pb
from common.proto.raven.v1 import types_pb2
from services.cli.context import call, config_of, emit, fail, model_name
from services.cli.render import (
    OVERALL_METRICS,
    class_thresholds_table,
    key_values,
    metric,
    print_json_line,
    show,
    when,
)
from services.cli.watching import EXIT_NOT_SUCCEEDED, EXIT_SUCCEEDED

app = typer.Typer(help="Evaluations: models scored on dataset version splits.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="evaluations/{id} or just the id")]


def evaluation_name(value: str) -> str:
    return value if "/" in value else f"evaluations/{value}"


def state_text(state: int) -> str:
    return pb.EvaluationState.Name(state).removeprefix("EVALUATION_STATE_")  # type: ignore[arg-type]


def where(e: pb.Evaluation) -> str:
    """What the evaluation scored: the version (or the plain dataset) and the split."""
    return f"{e.dataset_version or e.dataset or '?'} / {e.split}"


def failure_text(e: pb.Evaluation) -> str:
    if not e.HasField("failure"):
        return ""
    return f"{types_pb2.FailureKind.Name(e.failure.kind)}: {e.failure.message}"


def inference_text(e: pb.Evaluation) -> str:
    """How the evaluation predicted: ``sliced: 640 px tiles, ...`` or ``full images``; ``not recorded`` for
    a finished one from before evaluations recorded it."""
    if e.HasField("inference"):
        return describe(record_from_proto(e.inference))
    return "not recorded" if e.state == pb.EVALUATION_STATE_SUCCEEDED else ""


def evaluation_detail(e: pb.Evaluation) -> list[Table]:
    progress = ""
    if e.state == pb.EVALUATION_STATE_RUNNING and e.progress.step:
        progress = e.progress.step + (f" {e.progress.done}/{e.progress.total}" if e.progress.total else "")
    rows = [
        ("name", e.name), ("state", state_text(e.state)), ("model", e.trained_model),
        ("dataset version", e.dataset_version), ("dataset", e.dataset), ("split", e.split),
        ("split sha256", e.split_sha256), ("training run", e.training_run), ("inference", inference_text(e)),
        ("progress", progress),
        ("failure", failure_text(e)),
        ("cancelled", e.cancel_reason), ("owner", e.owner), ("created", when(e.create_time)),
        ("finished", when(e.end_time) if e.HasField("end_time") else ""), ("worker", e.worker_id),
        ("artifacts", ", ".join(types_pb2.ArtifactKind.Name(a.kind) for a in e.artifacts)),
    ]  # fmt: skip
    tables = [key_values(e.name, rows)]
    if e.HasField("metrics"):
        overall = [(name, metric(getattr(e.metrics, name))) for name in OVERALL_METRICS]
        tables.append(key_values(f"COCO bbox ({e.split})", overall))
        if e.metrics.per_class_ap:
            tables.append(class_thresholds_table(e.metrics))
    return tables


def evaluations_table(evaluations: list[pb.Evaluation], footer: str) -> Table:
    table = Table(title="evaluations", title_justify="left", caption=footer, caption_justify="left")
    for header in ("NAME", "STATE", "MODEL", "VERSION / SPLIT", "bbox_mAP", "CREATED"):
        table.add_column(header, overflow="fold")
    for e in evaluations:
        value = metric(e.metrics.bbox_map) if e.HasField("metrics") else ""
        table.add_row(e.name, state_text(e.state), e.trained_model, where(e), value, when(e.create_time))
    return table


@app.command()
def create(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="trainedModels/{id} or just the id")],
    dataset_version: Annotated[str, typer.Argument(help="datasets/{id}/versions/{n}")],
    split: Annotated[str, typer.Option(help="test | val | train")] = "test",
    request_id: str = "",
) -> None:
    """Score a model on a split of a READY dataset version (queued for a worker)."""
    evaluation = call(
        ctx,
        lambda client: client.create_evaluation(
            model_name(model), dataset_version, split=split, request_id=request_id
        ),
    )
    emit(ctx, evaluation, *evaluation_detail(evaluation))


@app.command()
def get(ctx: typer.Context, name: Name) -> None:
    """Show one evaluation: state, metrics overall / per size / per class with thresholds, artifacts."""
    evaluation = call(ctx, lambda client: client.get_evaluation(evaluation_name(name)))
    emit(ctx, evaluation, *evaluation_detail(evaluation))


@app.command("list")
def list_evaluations(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="only this model's")] = "",
    dataset_version: Annotated[str, typer.Option(help="only on this version")] = "",
    split: str = "",
    page_size: int = 0,
    page_token: str = "",
) -> None:
    """List evaluations, newest first."""
    page = call(
        ctx,
        lambda client: client.list_evaluations(
            trained_model=model_name(model) if model else "", dataset_version=dataset_version, split=split,
            page_size=page_size, page_token=page_token,
        ),
    )  # fmt: skip
    footer = f"{len(page.evaluations)} of {page.total_size}"
    if page.next_page_token:
        footer += f"; next page: {page.next_page_token}"
    emit(ctx, page, evaluations_table(list(page.evaluations), footer))


@app.command()
def cancel(ctx: typer.Context, name: Name, reason: str = "") -> None:
    """Cancel a PENDING or RUNNING evaluation."""
    evaluation = call(ctx, lambda client: client.cancel_evaluation(evaluation_name(name), reason=reason))
    emit(ctx, evaluation, f"{evaluation.name}: {state_text(evaluation.state)}")


@app.command()
def watch(ctx: typer.Context, name: Name) -> None:
    """Follow an evaluation until it ends; exit 0 when SUCCEEDED, 1 otherwise (JSON lines with -o json)."""
    as_json = config_of(ctx).json

    async def work(client: RavenClient) -> pb.Evaluation:
        last = pb.Evaluation()
        async for evaluation in client.watch_evaluation(evaluation_name(name)):
            last = evaluation
            if as_json:
                print_json_line(evaluation)
            else:
                step = f" {evaluation.progress.step}" if evaluation.progress.step else ""
                typer.echo(f"{evaluation.name}: {state_text(evaluation.state)}{step}")
        return last

    final = call(ctx, work)
    if not final.name:
        raise fail(f"{evaluation_name(name)}: the watch ended without news")
    if not as_json:
        show(*evaluation_detail(final))
    raise typer.Exit(EXIT_SUCCEEDED if final.state == pb.EVALUATION_STATE_SUCCEEDED else EXIT_NOT_SUCCEEDED)
