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
from services.cli.durations import duration_text
from services.cli.tables import COLUMN_OVERHEAD, TABLE_OVERHEAD, Col, cell_width, fitted_table

NOT_MEASURED = -1.0
NOT_MEASURED_TEXT = "n/a"
# Metric fields where COCO's -1 means "not measurable": left out of ravenctl's JSON instead of printed as -1.
METRIC_FIELDS = {
    types_pb2.DetectionMetrics.DESCRIPTOR.full_name: (
        "bbox_map", "bbox_map_50", "bbox_map_75", "bbox_map_s", "bbox_map_m", "bbox_map_l",
    ),
    types_pb2.ClassAP.DESCRIPTOR.full_name: ("ap",),
    types_pb2.EpochMetrics.DESCRIPTOR.full_name: ("bbox_map", "bbox_map_50"),
    types_pb2.MetricValue.DESCRIPTOR.full_name: ("value",),
}  # fmt: skip


def to_dict(message: Message) -> dict[str, Any]:
    """Every field present (protobuf names), except metrics COCO reports as -1 (not measurable): absent."""
    data = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    _drop_not_measured(message, data)
    return data


def _drop_not_measured(message: Message, data: dict[str, Any]) -> None:
    descriptor = message.DESCRIPTOR
    if descriptor.full_name.startswith("google.protobuf."):
        return
    for name in METRIC_FIELDS.get(descriptor.full_name, ()):
        if getattr(message, name) == NOT_MEASURED:
            data.pop(name, None)
    for field in descriptor.fields:
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue
        value = getattr(message, field.name)
        if field.label == field.LABEL_REPEATED:
            for item, item_data in zip(value, data.get(field.name, []), strict=False):
                _drop_not_measured(item, item_data)
        elif message.HasField(field.name) and isinstance(data.get(field.name), dict):
            _drop_not_measured(value, data[field.name])


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


def named_table(
    title: str,
    names: Sequence[str],
    columns: Sequence[Col],
    rows: Sequence[Sequence[str]],
    width: int,
    footer: str,
) -> Table:
    """A NAME column of resource names first when the whole table fits them, else an ID column of bare ids
    (every command takes those); a name or id is never folded."""
    natural = sum(
        max([cell_width(c.header), *(cell_width(r[i]) for r in rows)]) + COLUMN_OVERHEAD
        for i, c in enumerate(columns)
    )
    longest = max(map(len, names), default=0)
    header, shown = "NAME", list(names)
    if natural + longest + COLUMN_OVERHEAD + TABLE_OVERHEAD > width:
        header, shown = "ID", [n.rsplit("/", 1)[-1] for n in names]
    name_column = Col(header, 0, min_width=max(map(len, shown), default=0))
    table_rows = [[n, *r] for n, r in zip(shown, rows, strict=True)]
    return fitted_table(title, [name_column, *columns], table_rows, width, footer)


def runs_table(
    runs: Sequence[training_run_pb2.TrainingRun], footer: str = "", width: int | None = None
) -> Table:
    width = width or console().width
    columns = [
        Col("DISPLAY NAME", 1), Col("STATE", 0, min_width=10), Col("PHASE", 6), Col("EPOCH", 2),
        Col("DATASET", 3), Col("TEMPLATE", 4), Col("MODEL", 7), Col("CREATED", 5),
    ]  # fmt: skip
    rows = [
        [
            run.display_name,
            state_name(run.state),
            phase_name(run.progress.phase),
            f"{run.progress.epoch}/{run.progress.max_epochs}" if run.progress.max_epochs else "-",
            run.dataset,
            run.model_template or "-",
            run.trained_model or "-",
            when(run.create_time),
        ]
        for run in runs
    ]
    return named_table("training runs", [r.name for r in runs], columns, rows, width, footer)


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
        ("dataset", run.dataset or run.dataset_version),
        ("dataset version", dataset_version_text(run) if run.dataset else ""),
        ("split sha256", run.split_sha256),
        ("template", run.model_template),
        ("base model", run.base_model),
        ("classes", ", ".join(run.class_names)),
        ("hyperparameters", hyperparameter_text(run.hyperparameters)),
        (
            "effective learning rate",
            f"{run.effective_learning_rate:.6g}" if run.effective_learning_rate else "",
        ),
        ("epoch", f"{progress.epoch}/{progress.max_epochs}" if progress.max_epochs else ""),
        ("iteration", f"{progress.iter}/{progress.max_iters}" if progress.max_iters else ""),
        ("losses", losses),
        ("trained model", run.trained_model),
        ("early stopping", f"stopped early at epoch {run.stopped_epoch}" if run.stopped_early else ""),
        ("time budget", budget_text(run)),
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
    if run.attempts:
        attempts = Table(title="attempts", title_justify="left")
        for column in ("ATTEMPT", "BATCH SIZE", "LEARNING RATE", "ENDED"):
            attempts.add_column(column, overflow="fold")
        for a in run.attempts:
            ended = ("PREEMPTED: " if a.preempted else "") + a.end_reason.removeprefix("preempted: ")
            attempts.add_row(str(a.attempt), str(a.batch_size), f"{a.learning_rate:.6g}", ended)
        tables.append(attempts)
    return tables


def budget_text(run: training_run_pb2.TrainingRun) -> str:
    """``stopped by time budget (max_runtime 5m, used 5m2s)``, or the budgets set; empty when none."""
    parts = [
        f"{f} {duration_text(getattr(run, f))}" for f in ("max_runtime", "max_pending") if run.HasField(f)
    ]
    if run.HasField("max_runtime"):
        parts.append(f"used {duration_text(run.runtime_used)}")
    text = ", ".join(parts)
    return f"stopped by time budget ({text})" if run.stopped_by_time_budget else text


def dataset_version_text(run: training_run_pb2.TrainingRun) -> str:
    """The implicit version a run on a plain dataset reference trains on, and whether it is still prepared."""
    waiting = run.dataset_version and not run.split_sha256 and run.state == types_pb2.PENDING
    return f"{run.dataset_version} (being prepared; queued once READY)" if waiting else run.dataset_version


def metric(value: float, digits: int = 3) -> str:
    """A COCO metric; -1 is COCO's "not measurable" (no ground truth of that kind), never a score."""
    return NOT_MEASURED_TEXT if value < 0 else fmt(value, digits)


def models_table(
    models: Sequence[trained_model_pb2.TrainedModel], footer: str = "", width: int | None = None
) -> Table:
    width = width or console().width
    columns = [
        Col("DISPLAY NAME", 1), Col("VER", 4, justify="right"), Col("mAP", 0, justify="right", min_width=5),
        Col("mAP50", 3, justify="right"), Col("PUBLISHED", 2), Col("DATASET", 5), Col("BASE MODEL", 7),
        Col("CREATED", 6),
    ]  # fmt: skip
    rows = [
        [
            m.display_name,
            str(m.version),
            metric(m.evaluation.val.bbox_map),
            metric(m.evaluation.val.bbox_map_50),
            "yes" if m.published else "no",
            m.dataset,
            m.base_model or "-",
            when(m.create_time),
        ]
        for m in models
    ]
    return named_table("trained models", [m.name for m in models], columns, rows, width, footer)


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
        ("aliases", ", ".join(model.aliases)),
        ("publish gate", decision_text(model.publish_decision) if model.HasField("publish_decision") else ""),
        ("training run", model.training_run),
        ("base model", model.base_model),
        ("dataset", model.dataset),
        ("dataset sha256", model.dataset_snapshot_sha256),
        ("split sha256", model.split_sha256),
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
        ("artifacts", artifact_kinds_text(model.artifacts)),
        ("created", when(model.create_time)),
    ]
    rows.extend((f"val {name}", metric(getattr(val, name))) for name in OVERALL_METRICS)
    test = model.evaluation.test
    if model.evaluation.HasField("test"):
        rows.extend((f"test {name}", metric(getattr(test, name))) for name in OVERALL_METRICS)
    tables = [key_values(f"trained model {model.name}", rows)]
    if val.per_class_ap:
        per_class = Table(title="per-class AP (val)", title_justify="left")
        per_class.add_column("CLASS")
        per_class.add_column("AP", justify="right")
        for item in val.per_class_ap:
            per_class.add_row(item.class_name, metric(item.ap))
        tables.append(per_class)
    if test.per_class_ap:
        tables.append(class_thresholds_table(test))
    return tables


def artifact_kinds_text(artifacts: Sequence[types_pb2.Artifact]) -> str:
    """Kinds in order, one with several artifacts (a gallery) counted: "CONFIG, PREDICTION_GALLERY (10)"."""
    counts: dict[str, int] = {}
    for a in artifacts:
        name = types_pb2.ArtifactKind.Name(a.kind)
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(name if n == 1 else f"{name} ({n})" for name, n in counts.items())


def decision_text(d: trained_model_pb2.PublishDecision) -> str:
    """The champion gate's audit record in one line, with both numbers."""
    outcome = trained_model_pb2.PublishDecision.Outcome.Name(d.outcome).removeprefix("OUTCOME_")
    if d.outcome in (trained_model_pb2.PublishDecision.OUTCOME_NO_CHAMPION,
                     trained_model_pb2.PublishDecision.OUTCOME_NOT_COMPARABLE):  # fmt: skip
        return f"{outcome} (by {d.decided_by}, {when(d.decide_time)}): {d.message}"
    numbers = (
        f"test bbox mAP {d.candidate_bbox_map:.4f} vs champion {d.champion} {d.champion_bbox_map:.4f} "
        f"(tolerance {d.tolerance:g}) on {d.dataset_version} test split"
    )
    source = f"; candidate from {d.candidate_source}" if d.candidate_source else ""
    return f"{outcome}: {numbers}{source} (by {d.decided_by}, {when(d.decide_time)}): {d.message}"


def class_thresholds_table(test: types_pb2.DetectionMetrics) -> Table:
    """Per-class test AP and the recommended score threshold (F1-optimal on test; n/a without one)."""
    table = Table(title="per class (test)", title_justify="left")
    table.add_column("CLASS")
    table.add_column("AP", justify="right")
    table.add_column("SCORE THRESHOLD", justify="right")
    for item in test.per_class_ap:
        known = item.HasField("recommended_score_threshold")
        table.add_row(
            item.class_name, metric(item.ap), metric(item.recommended_score_threshold) if known else ""
        )
    return table


def show(*renderables: Any) -> None:
    out = console()
    for renderable in renderables:
        out.print(renderable)
