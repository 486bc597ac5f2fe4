"""``ravenctl models compare A B [--split test] [--allow-different-splits]``: models side by side on their
evaluations of the same dataset version and split.

A model's numbers are only compared with numbers from the same dataset version and split: the newest
version (and split) every model has a SUCCEEDED evaluation on is chosen and named; without one the command
refuses (exit 2) and says how to get one, unless ``--allow-different-splits`` (then each model's newest
evaluation on the split is shown, and the output says they differ). How each evaluation predicted is shown
when one of them was sliced (a model trained on tiles: sliced inference on the full images, merged).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.table import Table

from common.client import RavenClient
from common.inference_settings import describe, record_from_proto
from common.proto.raven.v1 import evaluations_pb2, trained_model_pb2
from services.cli.context import call, emit, fail, model_name
from services.cli.render import NOT_MEASURED, NOT_MEASURED_TEXT, OVERALL_METRICS, console, metric
from services.cli.tables import Col, fits, fitted_table


def split_key(e: evaluations_pb2.Evaluation) -> str:
    """What makes two evaluations comparable: the same version (or plain dataset) and split."""
    return f"{e.dataset_version or e.dataset} / {e.split}"


@dataclass(frozen=True)
class Choice:
    evaluations: list[evaluations_pb2.Evaluation]  # one per model, in the models' order
    same_split: bool
    on: str  # the common version / split, or "" when they differ


class NotComparable(Exception):
    pass


def choose(
    names: list[str], found: list[list[evaluations_pb2.Evaluation]], version: str, allow_different: bool
) -> Choice:
    """One SUCCEEDED evaluation per model (each list newest first), on a common version/split if any."""
    missing = [n for n, evals in zip(names, found, strict=True) if not evals]
    if missing:
        raise NotComparable(
            f"{', '.join(missing)} has no succeeded evaluation on this split"
            + (f" of {version}" if version else "")
            + ": run `ravenctl evaluations create MODEL VERSION --split SPLIT` first"
        )
    common = set.intersection(*({split_key(e) for e in evals} for evals in found))
    if common:
        newest = max(
            (e for e in found[0] if split_key(e) in common), key=lambda e: e.create_time.ToDatetime()
        )
        key = split_key(newest)
        return Choice([next(e for e in evals if split_key(e) == key) for evals in found], True, key)
    if not allow_different:
        seen = "; ".join(
            f"{n} on {', '.join(sorted({split_key(e) for e in evals}))}"
            for n, evals in zip(names, found, strict=True)
        )
        raise NotComparable(
            f"the models have no evaluation on the same dataset version and split ({seen}); evaluate them on "
            "one version (`ravenctl evaluations create`), or pass --allow-different-splits to show numbers "
            "from different splits side by side"
        )
    return Choice([evals[0] for evals in found], False, "")


def comparison_data(models: list[trained_model_pb2.TrainedModel], choice: Choice) -> dict[str, Any]:
    """Metrics COCO could not measure (-1) are left out, as if the model had no such number; classes in
    first-seen order."""
    classes: list[str] = []
    for e in choice.evaluations:
        classes.extend(c.class_name for c in e.metrics.per_class_ap if c.class_name not in classes)
    return {
        "same_split": choice.same_split,
        "compared_on": choice.on,
        "classes": classes,
        "models": [
            {
                "name": m.name, "display_name": m.display_name, "version": m.version,
                "evaluation": e.name, "dataset_version": e.dataset_version, "dataset": e.dataset,
                "split": e.split, "split_sha256": e.split_sha256,
                "metrics": {
                    k: getattr(e.metrics, k) for k in OVERALL_METRICS if getattr(e.metrics, k) != NOT_MEASURED
                },
                "per_class_ap": {c.class_name: c.ap for c in e.metrics.per_class_ap if c.ap != NOT_MEASURED},
                # how it predicted (EvaluationInference's fields); None: not recorded (an older evaluation)
                "inference": record_from_proto(e.inference) if e.HasField("inference") else None,
            }
            for m, e in zip(models, choice.evaluations, strict=True)
        ],
    }  # fmt: skip


def comparison_text(data: dict[str, Any]) -> str:
    if data["same_split"]:
        text = f"compared on {data['compared_on']} (the same images for every model)"
    else:
        where = "; ".join(
            f"{m['name']}: {m['dataset_version'] or m['dataset']} / {m['split']}" for m in data["models"]
        )
        text = f"WARNING: different splits, the numbers are not comparable ({where})"
    return text + (f"\n{note}" if (note := sliced_note(data["models"])) else "")


def sliced_note(models: list[dict[str, Any]]) -> str:
    """Says which evaluations were sliced when any was ('' when none): a sliced model was scored on the
    same full images and ground truth, its boxes merged across tiles."""
    sliced = [m for m in models if (m.get("inference") or {}).get("sliced")]
    if not sliced:
        return ""
    ways = "; ".join(f"{m['name']}: {describe(m.get('inference') or {}) or 'not recorded'}" for m in models)
    return (
        f"inference: {ways} (sliced: predicted on tiles of the full images and merged, scored on the same "
        "full-image ground truth)"
    )


def comparison_tables(data: dict[str, Any], width: int | None = None) -> list[Table]:
    """Models side by side. When their names don't fit the terminal as headers, columns are #1, #2, ... and a
    legend names them."""
    width = width or console().width
    models = data["models"]
    full = [f"{m['name']}\n{m['display_name']} v{m['version']}" for m in models]
    short = [f"#{i}" for i in range(1, len(models) + 1)]
    label_width = max(len(name) for name in (*OVERALL_METRICS, *data["classes"], "METRIC"))
    headers = full if fits([Col("METRIC", min_width=label_width), *(Col(h) for h in full)], width) else short
    model_columns = [Col(h, justify="right", min_width=5) for h in headers]
    overall = [[k, *_highlight_best([m["metrics"].get(k) for m in models])] for k in OVERALL_METRICS]
    if sliced_note(models):  # one of them was sliced: how each predicted, under its numbers
        overall.append(
            ["inference", *(describe(m.get("inference"), short=True) or "not recorded" for m in models)]
        )
    per_class = [[c, *_highlight_best([m["per_class_ap"].get(c) for m in models])] for c in data["classes"]]
    splits = {m["split"] for m in models}
    on = next(iter(splits)) if len(splits) == 1 else "different splits"
    tables = [
        fitted_table(f"overall ({on})", [Col("METRIC"), *model_columns], overall, width),
        fitted_table(f"per-class AP ({on})", [Col("CLASS"), *model_columns], per_class, width),
    ]
    if headers is short:
        legend = [
            [h, m["name"], f"{m['display_name']} v{m['version']}"] for h, m in zip(short, models, strict=True)
        ]
        name_width = max(len(m["name"]) for m in models)
        legend_columns = [Col("#"), Col("NAME", min_width=name_width), Col("DISPLAY NAME")]
        tables.insert(0, fitted_table("models", legend_columns, legend, width))
    return tables


def _highlight_best(values: list[float | None]) -> list[str]:
    """``n/a`` for a metric COCO could not measure (absent or -1); the best measured value in bold green."""
    present = [v for v in values if v is not None and v >= 0]
    best = max(present) if present else None
    return [
        NOT_MEASURED_TEXT
        if v is None or v < 0
        else (f"[bold green]{metric(v)}[/]" if v == best and len(present) > 1 else metric(v))
        for v in values
    ]


def compare(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="two or more models")],
    split: Annotated[str, typer.Option(help="test | val | train")] = "test",
    dataset_version: Annotated[str, typer.Option(help="compare on this version only")] = "",
    allow_different_splits: Annotated[
        bool, typer.Option(help="show numbers of different versions/splits side by side (marked as such)")
    ] = False,
) -> None:
    """Two or more models side by side, on their evaluations of the same dataset version and split."""
    if len(names) < 2:
        raise fail("compare needs at least two models")
    full = [model_name(n) for n in names]

    async def work(
        client: RavenClient,
    ) -> tuple[list[trained_model_pb2.TrainedModel], list[list[evaluations_pb2.Evaluation]]]:
        models = list(await asyncio.gather(*(client.get_model(n) for n in full)))

        async def succeeded(name: str) -> list[evaluations_pb2.Evaluation]:
            found = client.iter_evaluations(
                trained_model=name, split=split, dataset_version=dataset_version,
                states=[evaluations_pb2.EVALUATION_STATE_SUCCEEDED],
            )  # fmt: skip
            return [e async for e in found]

        return models, list(await asyncio.gather(*(succeeded(n) for n in full)))

    models, found = call(ctx, work)
    try:
        choice = choose(full, found, dataset_version, allow_different_splits)
    except NotComparable as exc:
        raise fail(str(exc)) from None
    data = comparison_data(models, choice)
    emit(ctx, data, comparison_text(data), *comparison_tables(data))
