"""`ravenctl models report` against the real trained_model server (SQLite and PostgreSQL): a model registered
through the registrar over real NATS with a real test split analysis (analyze_predictions on a synthetic
split) and its real PNGs in the artifact store becomes one self-contained HTML page; a model without them
gets FAILED_PRECONDITION."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import io
import json
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from common.proto.raven.v1 import trained_model_pb2, types_pb2
from services.cli.main import app
from services.trainer_worker.adapters.coco_evaluation import analyze_predictions
from services.trainer_worker.adapters.evaluation_plots import (
    confusion_matrix_png,
    gallery,
    gallery_files,
    pr_curves_png,
)
from tests.fixtures.coco_predictions import HOSTILE_NAME, synthetic_split
from tests.helpers import token
from tests.integration.trained_model.api_helpers import ALICE, rpc_error
from tests.integration.trained_model.conftest import Env
from tests.integration.trained_model.test_registrar import replies
from tests.integration.training_run.test_discovery_cli import logs_to_stderr  # noqa: F401

pytestmark = pytest.mark.usefixtures("logs_to_stderr")


async def ravenctl(env: Env, *args: str) -> Result:
    """ravenctl in a thread whose coroutines run on this test's loop, beside the server."""
    loop = asyncio.get_running_loop()

    def on_test_loop(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    base = [
        "--training-run-addr", "127.0.0.1:1", "--trained-model-addr", f"127.0.0.1:{env.app.server.port}",
        "--token", token("alice"),
    ]  # fmt: skip
    return await asyncio.to_thread(
        CliRunner().invoke, app, [*base, *args], obj=on_test_loop, env={"RAVEN_TOKEN": None}
    )


def image_of(record: dict[str, Any]) -> Image.Image:
    """A split image: a gradient, different per image id."""
    shade = int(record["id"]) * 7 % 256
    return (
        Image.linear_gradient("L")
        .resize((record["width"], record["height"]))
        .convert("RGB")
        .point(lambda v: (v + shade) % 256)
    )


async def register_with_analysis(
    env: Env, js: Any, version: str = ""
) -> tuple[str, dict[str, Any], dict[int, bytes], dict[str, bytes]]:
    """(model name, the stored analysis document, the stored PNGs by kind, the gallery PNGs by filename);
    ``version``: trained on that dataset version, its test evaluation recorded (as a real run's is)."""
    ground_truth, predictions = synthetic_split()
    analysis = analyze_predictions(ground_truth, predictions, gallery_size=3)
    drawn = gallery_files(gallery(analysis, ground_truth, predictions, image_of, max_side=256))
    document = json.loads(json.dumps(analysis.to_dict()))
    pngs: dict[int, bytes] = {
        types_pb2.CONFUSION_MATRIX: confusion_matrix_png(analysis.confusion),
        types_pb2.PR_CURVES: pr_curves_png(analysis.classes),
    }
    contents = {
        types_pb2.PREDICTIONS: json.dumps(predictions).encode(),
        types_pb2.EVALUATION_ANALYSIS: json.dumps(document).encode(),
        **pngs,
    }
    run_id = uuid.uuid4().hex[:12]
    event = env.completed_event(run_id, display_name=f"report-{run_id}")
    if version:
        event.completed.dataset, event.completed.split_sha256 = version, "e" * 64
        event.completed.evaluation.test.bbox_map = document["metrics"]["bbox_mAP"]
    for kind, data in contents.items():
        stored = env.store.put_bytes(f"runs/{run_id}/{types_pb2.ArtifactKind.Name(kind)}", data)
        event.completed.artifacts.add(
            kind=kind, uri=stored.key, size_bytes=stored.size_bytes, sha256=stored.sha256
        )
    for filename, data in drawn.items():
        stored = env.store.put_bytes(f"runs/{run_id}/{filename}", data)
        event.completed.artifacts.add(
            kind=types_pb2.PREDICTION_GALLERY,
            uri=stored.key,
            size_bytes=stored.size_bytes,
            sha256=stored.sha256,
        )
    await js.publish(env.names.run_events_subject(run_id), event.SerializeToString())
    events = await replies(js, env, run_id, "model_registered")
    registered = next(e for e in events if e.WhichOneof("payload") == "model_registered")
    return f"trainedModels/{registered.model_registered.trained_model_id}", document, pngs, drawn


async def test_report_of_a_model_with_a_test_split_analysis(env: Env, js: Any, tmp_path: Path) -> None:
    name, document, pngs, drawn = await register_with_analysis(env, js)
    out = tmp_path / "report.html"
    result = await ravenctl(env, "-o", "json", "models", "report", name, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"path": str(out), "trained_model": name}
    page = out.read_text(encoding="utf-8")

    measured = [c for c in document["classes"] if c["ap"] >= 0]
    assert len(measured) == 3  # tyre, bag and the hostile name have ground truth
    for c in document["classes"]:
        ap = f"{c['ap']:.3f}" if c["ap"] >= 0 else "—"
        row = f"<tr><td>{html.escape(c['name'])}</td><td>{c['ground_truth']}</td><td>{c['detections']}</td>"
        assert f"{row}<td>{ap}</td>" in page, c["name"]
        if c["recommended_score_threshold"] >= 0:
            assert f"<td>{c['recommended_score_threshold']:.3f}</td>" in page
    assert f"<td>{document['metrics']['bbox_mAP']:.3f}</td>" in page
    for label in ("small", "medium", "large", "&lt;8", "8-16", "&gt;128"):
        assert f"<tr><td>{label}</td>" in page
    assert len(drawn) == 6 and page.count("<figure>") == 6  # 3 worst, 3 best
    assert page.index("Worst images") < page.index("Best images")
    for png in [*pngs.values(), *drawn.values()]:
        assert png.startswith(b"\x89PNG")
        assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in page
    assert HOSTILE_NAME not in page and "<script" not in page
    assert html.escape(HOSTILE_NAME) in page
    assert "Content-Security-Policy" in page and "http://" not in page and "https://" not in page
    assert name in page

    again = await ravenctl(env, "models", "report", name, "--out", str(tmp_path / "again.html"))
    assert again.exit_code == 0, again.output
    assert f"wrote {tmp_path / 'again.html'}" in again.output.replace("\n", "")


async def test_the_gallery_is_stored_with_the_model_as_valid_pngs(env: Env, js: Any, tmp_path: Path) -> None:
    name, _, _, drawn = await register_with_analysis(env, js)
    model = await env.stub.GetTrainedModel(
        trained_model_pb2.GetTrainedModelRequest(name=name), metadata=ALICE
    )
    stored = [a for a in model.artifacts if a.kind == types_pb2.PREDICTION_GALLERY]
    assert sorted(a.uri.rsplit("/", 1)[-1] for a in stored) == sorted(drawn)
    for filename, data in drawn.items():
        request = trained_model_pb2.DownloadModelArtifactRequest(
            name=name, kind=types_pb2.PREDICTION_GALLERY, filename=filename
        )
        chunks = [c async for c in env.stub.DownloadModelArtifact(request, metadata=ALICE)]
        body = b"".join(c.data for c in chunks)
        assert chunks[0].filename == filename and body == data
        assert hashlib.sha256(body).hexdigest() == chunks[0].sha256
        with Image.open(io.BytesIO(body)) as image:
            assert image.format == "PNG"
            image.load()  # every pixel decodes
            assert 0 < max(image.size) <= 256
    missing = trained_model_pb2.DownloadModelArtifactRequest(
        name=name, kind=types_pb2.PREDICTION_GALLERY, filename="test_gallery_worst_99_image_1.png"
    )
    error = await rpc_error(env.stub.DownloadModelArtifact(missing, metadata=ALICE))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_a_model_without_analysis_artifacts_gets_failed_precondition(env: Env, tmp_path: Path) -> None:
    seeded = await env.seed()  # checkpoint and log only: trained before test split analyses existed
    out = tmp_path / "report.html"
    name = f"trainedModels/{seeded.id}"
    result = await ravenctl(env, "models", "report", name, "--out", str(out))
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: FAILED_PRECONDITION: {name} has no test split analysis")
    assert "EVALUATION_ANALYSIS, CONFUSION_MATRIX, PR_CURVES missing" in result.output
    assert "Traceback" not in result.output and not out.exists()

    missing = await ravenctl(env, "models", "report", "trainedModels/nope", "--out", str(out))
    assert missing.exit_code == 2 and missing.output.startswith("error: NOT_FOUND:"), missing.output


async def test_dataset_version_of_the_runs_own_evaluation_gives_the_full_page(
    env: Env, js: Any, tmp_path: Path
) -> None:
    version = "datasets/dumps/versions/3"
    name, document, pngs, drawn = await register_with_analysis(env, js, version)
    out = tmp_path / "report.html"
    result = await ravenctl(
        env, "-o", "json", "models", "report", name, "--dataset-version", version, "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["dataset_version"], data["split"], data["split_sha256"]) == (version, "test", "e" * 64)
    assert data["full"] is True and data["evaluation"].startswith("evaluations/")
    page = out.read_text(encoding="utf-8")
    assert f"<h2>{version} / test split</h2>" in page and data["evaluation"] in page and "e" * 64 in page
    for png in [*pngs.values(), *drawn.values()]:
        assert base64.b64encode(png).decode() in page
    assert f"<td>{document['metrics']['bbox_mAP']:.3f}</td>" in page
