"""``ravenctl models report``: one self-contained HTML page of a model's test split evaluation, from the
analysis artifacts its run stored (EVALUATION_ANALYSIS JSON, CONFUSION_MATRIX and PR_CURVES PNGs, and the
PREDICTION_GALLERY PNGs when it has them), each downloaded sha256-checked like ``models download``. The
page is drawn by the one evaluation report renderer (``common/evaluation_report.py``).

``--dataset-version V [--split S]`` reports the model's newest SUCCEEDED evaluation on that version's split
instead (ListEvaluations filtered by model, version, split and state); none: exit 2 naming the
``ravenctl evaluations create`` command to run. When that evaluation is the run's own (its analysis artifacts
are the model's, same sha256) the page is the full one; otherwise it holds the evaluation's recorded metrics
(overall and per class with thresholds) and says that its plots are not downloadable (DownloadModelArtifact
serves a model's own artifacts only)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer

from common.client import RavenClient, RavenError
from common.evaluation_analysis import COCO_KEYS, EvaluationInputError
from common.evaluation_report import MetricsSection, ReportSection, render_report, stored_section
from common.inference_settings import describe, record_from_proto
from common.proto.raven.v1 import evaluations_pb2, trained_model_pb2, types_pb2
from services.cli.context import CliError, call, emit, fail, model_name

THRESHOLD = "recommended_score_threshold"
REPORT_KINDS = (types_pb2.EVALUATION_ANALYSIS, types_pb2.CONFUSION_MATRIX, types_pb2.PR_CURVES)


def report(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="trainedModels/{id} or just the id")],
    out: Annotated[Path | None, typer.Option(help="HTML path (default: {id}-report.html)")] = None,
    dataset_version: Annotated[
        str | None,
        typer.Option(
            "--dataset-version",
            help="datasets/{id}/versions/{n}: report the model's SUCCEEDED evaluation on this version",
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="split of --dataset-version: test, val or train")] = "test",
) -> None:
    """HTML evaluation report of a model's test split (or of its evaluation on --dataset-version's split):
    metric tables, confusion matrix, PR curves, gallery."""
    full = model_name(name)
    path = out or Path(f"{full.rsplit('/', 1)[-1]}-report.html")
    if dataset_version is None and split != "test":
        raise fail("--split needs --dataset-version (without it the model's own test split is reported)")

    async def work(client: RavenClient) -> dict[str, Any]:
        model = await client.get_model(full)
        chosen = None
        if dataset_version is not None:
            chosen = await chosen_evaluation(client, full, dataset_version, split)
            if not own_analysis(model, chosen):
                metrics_only = MetricsSection(
                    f"{chosen.dataset_version} / {chosen.split} split",
                    overall(chosen.metrics),
                    per_class(chosen.metrics),
                    evaluation_context(model, chosen),
                    f"The recorded metrics of {chosen.name}: its confusion matrix, PR curves and gallery are "
                    "stored with the evaluation, and only a model's own artifacts can be downloaded.",
                )
                return write(path, model, metrics_only, chosen)
        missing = [k for k in REPORT_KINDS if not any(a.kind == k for a in model.artifacts)]
        if missing:
            kinds = ", ".join(types_pb2.ArtifactKind.Name(k) for k in missing)
            raise RavenError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{full} has no test split analysis ({kinds} missing): models trained before evaluation "
                "reports existed, or without a test split, have none; train a new model to get one",
            )
        with tempfile.TemporaryDirectory(prefix="ravenctl-report-") as tmp:
            files = {}
            for kind in REPORT_KINDS:
                dest = Path(tmp) / types_pb2.ArtifactKind.Name(kind)
                result = await client.download(full, kind, dest, resume=False)  # sha256 checked
                files[kind] = result.path.read_bytes()
            gallery = {}
            for a in model.artifacts:
                if a.kind == types_pb2.PREDICTION_GALLERY:
                    name = a.uri.rsplit("/", 1)[-1]
                    dest = Path(tmp) / "gallery" / name
                    result = await client.download(
                        full, types_pb2.PREDICTION_GALLERY, dest, resume=False, filename=name
                    )
                    gallery[name] = result.path.read_bytes()
        heading, rows = "Test split", context(model)
        if chosen is not None:
            heading = f"{chosen.dataset_version} / {chosen.split} split"
            rows = evaluation_context(model, chosen)
        try:
            section = stored_section(
                heading,
                json.loads(files[types_pb2.EVALUATION_ANALYSIS]),
                files[types_pb2.CONFUSION_MATRIX],
                files[types_pb2.PR_CURVES],
                rows,
                gallery,
            )
        except (ValueError, EvaluationInputError) as exc:  # json.JSONDecodeError is a ValueError
            raise CliError(f"{full}: its EVALUATION_ANALYSIS artifact cannot be read: {exc}") from None
        return write(path, model, section, chosen)

    result = call(ctx, work)
    emit(ctx, result, f"wrote {result['path']}")


def write(
    path: Path,
    model: trained_model_pb2.TrainedModel,
    section: ReportSection | MetricsSection,
    chosen: evaluations_pb2.Evaluation | None,
) -> dict[str, Any]:
    page = render_report(f"Evaluation report: {model.display_name} v{model.version}", [section])
    path.write_text(page, encoding="utf-8")
    result: dict[str, Any] = {"path": str(path), "trained_model": model.name}
    if chosen is not None:
        result |= {
            "evaluation": chosen.name, "dataset_version": chosen.dataset_version, "split": chosen.split,
            "split_sha256": chosen.split_sha256, "full": isinstance(section, ReportSection),
        }  # fmt: skip
    return result


async def chosen_evaluation(
    client: RavenClient, model: str, version: str, split: str
) -> evaluations_pb2.Evaluation:
    """The model's newest SUCCEEDED evaluation on the version's split; none: a CliError naming the command
    that makes one (and the one already PENDING or RUNNING, when there is one)."""
    succeeded = evaluations_pb2.EVALUATION_STATE_SUCCEEDED
    found = await client.list_evaluations(
        trained_model=model, dataset_version=version, split=split, states=[succeeded], page_size=1
    )
    if found.evaluations:
        return found.evaluations[0]
    active = await client.list_evaluations(
        trained_model=model, dataset_version=version, split=split, page_size=1,
        states=[evaluations_pb2.EVALUATION_STATE_PENDING, evaluations_pb2.EVALUATION_STATE_RUNNING],
    )  # fmt: skip
    if active.evaluations:
        e = active.evaluations[0]
        state = evaluations_pb2.EvaluationState.Name(e.state).removeprefix("EVALUATION_STATE_")
        raise CliError(
            f"{model} has no succeeded evaluation on {version} {split} split yet: {e.name} is {state}; "
            f"run `ravenctl evaluations watch {e.name}`, then report again"
        )
    raise CliError(
        f"{model} has no succeeded evaluation on {version} {split} split: run "
        f"`ravenctl evaluations create {model} {version} --split {split}`, then "
        "`ravenctl evaluations watch EVALUATION` and report again"
    )


def own_analysis(model: trained_model_pb2.TrainedModel, e: evaluations_pb2.Evaluation) -> bool:
    """Whether the evaluation's analysis files are the model's own (the run's test evaluation): then the
    model's artifacts give the full page."""
    stored = {a.kind: a.sha256 for a in model.artifacts}
    mine = {a.kind: a.sha256 for a in e.artifacts}
    return all(k in mine and mine[k] == stored.get(k) for k in REPORT_KINDS)


def overall(metrics: Any) -> dict[str, float]:
    keys = ("bbox_map", "bbox_map_50", "bbox_map_75", "bbox_map_s", "bbox_map_m", "bbox_map_l")
    return {coco: getattr(metrics, key) for coco, key in zip(COCO_KEYS, keys, strict=True)}


def per_class(metrics: Any) -> list[tuple[str, float, float | None]]:
    return [
        (c.class_name, c.ap, c.recommended_score_threshold if c.HasField(THRESHOLD) else None)
        for c in metrics.per_class_ap
    ]


def evaluation_context(
    model: trained_model_pb2.TrainedModel, e: evaluations_pb2.Evaluation
) -> dict[str, str]:
    """What the page shows with --dataset-version: the model, what it was trained on, and the evaluation."""
    tiles = model.sliced_inference
    rows = {
        "model": f"{model.name} ({model.display_name} v{model.version})",
        "model template": model.model_template,
        "trained on": model.dataset,
        "evaluation": e.name,
        "dataset version": e.dataset_version or e.dataset,
        "split": e.split,
        "split sha256": e.split_sha256,
        f"{e.split} bbox mAP": f"{e.metrics.bbox_map:.3f}",
        "inference": describe(record_from_proto(e.inference))
        if e.HasField("inference")
        else describe({"sliced": tiles.sliced, "tile_size": tiles.tile_size, "overlap": tiles.overlap}),
    }
    return {k: v for k, v in rows.items() if v}


def context(model: trained_model_pb2.TrainedModel) -> dict[str, str]:
    """What was evaluated on what, shown above the tables."""
    tiles = model.sliced_inference
    inference = {"sliced": tiles.sliced, "tile_size": tiles.tile_size, "overlap": tiles.overlap}
    rows = {
        "model": f"{model.name} ({model.display_name} v{model.version})",
        "model template": model.model_template,
        "dataset": model.dataset,
        "dataset snapshot sha256": model.dataset_snapshot_sha256,
        "split sha256": model.split_sha256,
        "test bbox mAP": f"{model.evaluation.test.bbox_map:.3f}",
        # a model trained on tiles was scored by sliced inference on the full test images
        "inference": describe(inference),
    }
    return {k: v for k, v in rows.items() if v}
