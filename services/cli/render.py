"""Output: JSON for scripts (protobuf field names, every field present) and rich tables for people."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import typer
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table

from common.proto.raven.v1 import trained_model_pb2, training_run_pb2, types_pb2


def to_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def print_json(value: Message | dict[str, Any] | list[Any]) -> None:
    """One pretty JSON document on stdout (plain write: rich would wrap long lines)."""
    data = to_dict(value) if isinstance(value, Message) else value
    typer.echo(json.dumps(data, indent=2, sort_keys=False))


def print_json_line(value: Message | dict[str, Any]) -> None:
    """One compact JSON object per line, for streams (watch, logs --follow)."""
    data = to_dict(value) if isinstance(value, Message) else value
    typer.echo(json.dumps(data, separators=(",", ":")))


def console() -> Console:
    # Made per use so it writes to the sys.stdout of the moment (CliRunner swaps it).
    return Console(highlight=False)


def state_name(state: int) -> str:
    return types_pb2.RunState.Name(state) if state else "-"


def phase_name(phase: int) -> str:
    return types_pb2.RunPhase.Name(phase) if phase else "-"


def when(stamp: Timestamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return "-"
    return stamp.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")


def fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def key_values(title: str, rows: Iterable[tuple[str, Any]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        if value not in ("", None, [], 0):
            table.add_row(key, str(value))
    return table


def runs_table(runs: Sequence[training_run_pb2.TrainingRun], footer: str = "") -> Table:
    table = Table(title="training runs", caption=footer or None, title_justify="left")
    for column in (
        "NAME",
        "DISPLAY NAME",
        "STATE",
        "PHASE",
        "EPOCH",
        "DATASET",
        "TEMPLATE",
        "MODEL",
        "CREATED",
    ):
        table.add_column(column, overflow="fold")
    for run in runs:
        progress = run.progress
        epoch = f"{progress.epoch}/{progress.max_epochs}" if progress.max_epochs else "-"
        table.add_row(
            run.name,
            run.display_name,
            state_name(run.state),
            phase_name(progress.phase),
            epoch,
            run.dataset,
            run.model_template or "-",
            run.trained_model or "-",
            when(run.create_time),
        )
    return table


def hyperparameter_text(hp: types_pb2.Hyperparameters) -> str:
    return (
        ", ".join(f"{k}={v}" for k, v in to_dict(hp).items() if v not in (0, "0", 0.0)) or "template defaults"
    )


def run_detail(run: training_run_pb2.TrainingRun) -> list[Table]:
    progress = run.progress
    losses = ", ".join(f"{loss.name}={fmt(loss.value, 4)}" for loss in progress.losses)
    rows: list[tuple[str, Any]] = [
        ("name", run.name),
        ("display name", run.display_name),
        ("state", state_name(run.state)),
        ("phase", phase_name(progress.phase) if progress.phase else ""),
        ("attempt", run.attempt),
        ("dataset", run.dataset),
        ("template", run.model_template),
        ("base model", run.base_model),
        ("classes", ", ".join(run.class_names)),
        ("hyperparameters", hyperparameter_text(run.hyperparameters)),
        ("epoch", f"{progress.epoch}/{progress.max_epochs}" if progress.max_epochs else ""),
        ("iteration", f"{progress.iter}/{progress.max_iters}" if progress.max_iters else ""),
        ("losses", losses),
        ("trained model", run.trained_model),
        ("owner", run.owner),
        ("created", when(run.create_time)),
        ("started", when(run.start_time)),
        ("ended", when(run.end_time)),
    ]
    if run.HasField("failure"):
        failure = run.failure
        rows.append(("failure", f"{types_pb2.FailureKind.Name(failure.kind)}: {failure.message}"))
        rows.extend(("", detail) for detail in failure.details)
    tables = [key_values(f"training run {run.name}", rows)]
    if run.transitions:
        history = Table(title="transitions", title_justify="left")
        for column in ("TIME", "FROM", "TO", "ATTEMPT", "REASON"):
            history.add_column(column, overflow="fold")
        for t in run.transitions:
            history.add_row(
                when(t.time), state_name(t.from_state), state_name(t.to_state), str(t.attempt), t.reason
            )
        tables.append(history)
    return tables


def models_table(models: Sequence[trained_model_pb2.TrainedModel], footer: str = "") -> Table:
    table = Table(title="trained models", caption=footer or None, title_justify="left")
    for column in (
        "NAME",
        "DISPLAY NAME",
        "VER",
        "mAP",
        "mAP50",
        "PUBLISHED",
        "DATASET",
        "BASE MODEL",
        "CREATED",
    ):
        table.add_column(column, overflow="fold")
    for model in models:
        val = model.evaluation.val
        table.add_row(
            model.name,
            model.display_name,
            str(model.version),
            fmt(val.bbox_map),
            fmt(val.bbox_map_50),
            "yes" if model.published else "no",
            model.dataset,
            model.base_model or "-",
            when(model.create_time),
        )
    return table


OVERALL_METRICS = ("bbox_map", "bbox_map_50", "bbox_map_75", "bbox_map_s", "bbox_map_m", "bbox_map_l")


def model_detail(model: trained_model_pb2.TrainedModel) -> list[Table]:
    val = model.evaluation.val
    versions = model.versions
    rows: list[tuple[str, Any]] = [
        ("name", model.name),
        ("display name", f"{model.display_name} v{model.version}"),
        (
            "published",
            f"yes (by {model.published_by}, {when(model.publish_time)})" if model.published else "no",
        ),
        ("training run", model.training_run),
        ("base model", model.base_model),
        ("dataset", model.dataset),
        ("dataset sha256", model.dataset_snapshot_sha256),
        ("template", model.model_template),
        ("classes", ", ".join(model.class_names)),
        ("hyperparameters", hyperparameter_text(model.hyperparameters)),
        ("seed", model.seed),
        ("config sha256", model.config_sha256),
        ("training seconds", fmt(model.training_seconds, 1) if model.training_seconds else ""),
        ("parameters", f"{model.parameter_count:,}" if model.parameter_count else ""),
        ("versions", ", ".join(f"{k}={v}" for k, v in to_dict(versions).items() if v)),
        (
            "checkpoint",
            f"{model.checkpoint.uri} ({model.checkpoint.size_bytes} B)" if model.checkpoint.uri else "",
        ),
        ("artifacts", ", ".join(types_pb2.ArtifactKind.Name(a.kind) for a in model.artifacts)),
        ("created", when(model.create_time)),
    ]
    rows.extend((f"val {metric}", fmt(getattr(val, metric))) for metric in OVERALL_METRICS)
    tables = [key_values(f"trained model {model.name}", rows)]
    if val.per_class_ap:
        per_class = Table(title="per-class AP (val)", title_justify="left")
        per_class.add_column("CLASS")
        per_class.add_column("AP", justify="right")
        for item in val.per_class_ap:
            per_class.add_row(item.class_name, fmt(item.ap))
        tables.append(per_class)
    return tables


def show(*renderables: Any) -> None:
    out = console()
    for renderable in renderables:
        out.print(renderable)
