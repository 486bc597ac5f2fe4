"""``ravenctl templates list|get`` and ``ravenctl workers list``: what a run may ask for, and who runs it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import typer
from google.protobuf.timestamp_pb2 import Timestamp
from rich.table import Table

from common.client import RavenClient
from common.proto.raven.v1 import training_run_pb2
from services.cli.context import call, emit
from services.cli.render import console, key_values, to_dict
from services.cli.tables import Col, fitted_table

templates_app = typer.Typer(
    help="Model templates: what model_template may be, with defaults and valid ranges.", no_args_is_help=True
)
workers_app = typer.Typer(help="Trainer workers and the queue (operators).", no_args_is_help=True)


def range_text(r: training_run_pb2.HyperparameterRange) -> str:
    if r.integer and not (r.min_exclusive or r.max_exclusive):
        text = f"{int(r.min)}..{int(r.max)}"
    else:
        text = f"{'(' if r.min_exclusive else '['}{r.min:g}, {r.max:g}{')' if r.max_exclusive else ']'}"
    return text + (f", multiple of {r.multiple_of}" if r.multiple_of else "")


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def templates_table(templates: Sequence[training_run_pb2.ModelTemplate], width: int | None = None) -> Table:
    width = width or console().width
    columns = [
        Col("TEMPLATE", 0, min_width=max((len(t.template_id) for t in templates), default=0)),
        Col("GPU", 1), Col("EPOCHS", 2, justify="right"), Col("BATCH", 3, justify="right"),
        Col("LR", 4, justify="right"), Col("IMAGE", 2, justify="right"), Col("ARCHITECTURE", 5),
    ]  # fmt: skip
    rows = []
    for t in templates:
        hp = t.default_hyperparameters
        rows.append([
            t.template_id, "needed" if t.gpu_recommended else "optional", str(hp.epochs), str(hp.batch_size),
            f"{hp.learning_rate:g}", str(hp.image_size), t.architecture,
        ])  # fmt: skip
    return fitted_table(
        "model templates", columns, rows, width, "defaults shown; ravenctl templates get NAME"
    )


def template_detail(t: training_run_pb2.ModelTemplate, width: int | None = None) -> list[Table]:
    options = t.options
    summary = key_values(
        f"model template {t.name}",
        [
            ("template", t.template_id),
            ("description", t.description),
            ("architecture", t.architecture),
            ("GPU", "recommended (CPU training is impractically slow)" if t.gpu_recommended else "optional"),
            ("mmdet config", t.mmdet_config),
            (
                "options",
                f"mixed precision: {yes_no(options.mixed_precision)}, tiling: {yes_no(options.tiling)}, "
                f"multi-GPU: {yes_no(options.multi_gpu)}",
            ),
        ],
    )
    defaults = to_dict(t.default_hyperparameters)
    rows = [[r.field, str(defaults.get(r.field, "")), range_text(r), r.note] for r in t.ranges]
    widest_range = max((len(row[2]) for row in rows), default=0)
    columns = [
        Col("FIELD", 0, min_width=14),
        Col("DEFAULT", 0),
        Col("RANGE", 0, min_width=widest_range),
        Col("NOTE", 1),
    ]
    return [summary, fitted_table("hyperparameters", columns, rows, width or console().width)]


@templates_app.command("list")
def list_templates(ctx: typer.Context) -> None:
    """Every model template with its default hyperparameters."""

    async def work(client: RavenClient) -> training_run_pb2.ListModelTemplatesResponse:
        found = [t async for t in client.iter_model_templates()]
        return training_run_pb2.ListModelTemplatesResponse(model_templates=found)

    page = call(ctx, work)
    emit(ctx, page, templates_table(page.model_templates))


@templates_app.command("get")
def get_template(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="modelTemplates/{id} or just the id")]
) -> None:
    """One template: defaults, valid range of every hyperparameter, the mmdet config it derives from."""
    template = call(ctx, lambda client: client.get_model_template(name))
    emit(ctx, template, *template_detail(template))


def ago(stamp: Timestamp, now: datetime) -> str:
    if not stamp.seconds:
        return "-"
    seconds = max(0, int((now - stamp.ToDatetime(tzinfo=UTC)).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def device_text(info: training_run_pb2.WorkerInfo) -> str:
    """The device, and the run size when the worker takes runs of more than 1 GPU (0 = it did not say: 1)."""
    if info.device_kind == "cuda":
        device = f"{info.gpu_count}x {info.gpu_model or 'GPU'}"
    else:
        device = info.device_kind or "?"
    return f"{device}, {info.gpus_per_run} GPUs/run" if info.gpus_per_run > 1 else device


def workers_tables(response: training_run_pb2.ListWorkersResponse, width: int | None = None) -> list[Table]:
    width = width or console().width
    now = datetime.now(UTC)
    run_ids = [[r.rsplit("/", 1)[-1] for r in w.training_runs] for w in response.workers]
    longest_id = max((len(r) for ids in run_ids for r in ids), default=0)
    longest_worker = max((len(w.worker_id) for w in response.workers), default=0)
    columns = [
        Col("WORKER", 0, min_width=longest_worker), Col("DEVICE", 1), Col("FREE", 0, justify="right"),
        Col("SLOTS", 3, justify="right"), Col("LAST SEEN", 0, min_width=8),
        Col("RUNNING", 2, min_width=longest_id),
    ]  # fmt: skip
    rows = [
        [
            w.worker_id, device_text(w.info), str(w.free_slots), str(w.info.slots),
            ago(w.last_seen_time, now),
            "\n".join(ids) or "-",
        ]
        for w, ids in zip(response.workers, run_ids, strict=True)
    ]  # fmt: skip
    queue_columns = [
        Col("NEEDS", 0), Col("PENDING", 0, justify="right"), Col("WORKERS", 0, justify="right"),
        Col("FREE SLOTS", 0, justify="right"),
    ]  # fmt: skip
    queue_rows = [
        [q.capability, str(q.pending_training_runs), str(q.workers), str(q.free_slots)]
        for q in response.queue
    ]
    caption = "" if response.workers else "no worker seen recently"
    return [
        fitted_table("workers", columns, rows, width, caption),
        fitted_table("queue", queue_columns, queue_rows, width),
    ]


@workers_app.command("list")
def list_workers(
    ctx: typer.Context,
    seen_within: Annotated[
        float,
        typer.Option(help="seconds; workers last seen longer ago are left out (0: server default, 5 min)"),
    ] = 0,
) -> None:
    """Workers seen recently (device, free slots, runs) and the pending runs per capability (gpu / any).

    Needs the training_runs.view_all permission.
    """
    response = call(ctx, lambda client: client.list_workers(seen_within=seen_within))
    emit(ctx, response, *workers_tables(response))
