"""``ravenctl models report``: one self-contained HTML page of a model's test split evaluation, from the
analysis artifacts its run stored (EVALUATION_ANALYSIS JSON, CONFUSION_MATRIX and PR_CURVES PNGs, and the
PREDICTION_GALLERY PNGs when it has them), each downloaded sha256-checked like ``models download``. The
page is drawn by the one evaluation report renderer (``common/evaluation_report.py``)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer

from common.client import RavenClient, RavenError
from common.evaluation_analysis import EvaluationInputError
from common.evaluation_report import render_report, stored_section
from common.inference_settings import describe
from common.proto.raven.v1 import trained_model_pb2, types_pb2
from services.cli.context import CliError, call, emit, model_name

REPORT_KINDS = (types_pb2.EVALUATION_ANALYSIS, types_pb2.CONFUSION_MATRIX, types_pb2.PR_CURVES)


def report(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="trainedModels/{id} or just the id")],
    out: Annotated[Path | None, typer.Option(help="HTML path (default: {id}-report.html)")] = None,
) -> None:
    """HTML evaluation report of a model's test split: metric tables, confusion matrix, PR curves, gallery."""
    full = model_name(name)
    path = out or Path(f"{full.rsplit('/', 1)[-1]}-report.html")

    async def work(client: RavenClient) -> dict[str, Any]:
        model = await client.get_model(full)
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
        try:
            section = stored_section(
                "Test split",
                json.loads(files[types_pb2.EVALUATION_ANALYSIS]),
                files[types_pb2.CONFUSION_MATRIX],
                files[types_pb2.PR_CURVES],
                context(model),
                gallery,
            )
        except (ValueError, EvaluationInputError) as exc:  # json.JSONDecodeError is a ValueError
            raise CliError(f"{full}: its EVALUATION_ANALYSIS artifact cannot be read: {exc}") from None
        page = render_report(f"Evaluation report: {model.display_name} v{model.version}", [section])
        path.write_text(page, encoding="utf-8")
        return {"path": str(path), "trained_model": full}

    result = call(ctx, work)
    emit(ctx, result, f"wrote {result['path']}")


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
