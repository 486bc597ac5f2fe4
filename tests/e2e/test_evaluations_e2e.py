"""End to end: a model's evaluation through EvaluationService, executed by the real worker.

The stack is nats-server, both services on SQLite and one CPU worker (separate processes). A tiny real
training on a dataset (its implicit version) registers a model, whose test split evaluation is listed
without running anything; ``ravenctl evaluations create`` on the same version and split is executed by the
worker (checkpoint and config from the model, the split from the version's frozen manifest, inference in a
child process, the training's own analysis), and must give the recorded numbers again. Its stored
predictions JSON scored by an independent pycocotools COCOeval over the split's annotation file matches the
recorded bbox mAP to 1e-6. A second model is trained on tiles (64 px, 16 px overlap): its recorded and its
worker-run evaluations say sliced with those tiles and the merge, the first model's say full images, and
``models compare`` puts both models' numbers on that split side by side and says which one was sliced.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from common.artifacts import ArtifactStore
from common.client import RavenClient
from common.proto.raven.v1 import events_pb2
from scripts.stack import ROOT, Stack
from services.trainer_worker.adapters.version_dataset import prepare_version_dataset
from services.trainer_worker.service_layer.evaluation_job import with_annotation_layout
from tests.fixtures.synthetic_coco import make_dataset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

RAVENCTL = str(Path(sys.executable).parent / "ravenctl")
TINY = ["--template", "rtmdet_tiny", "--batch-size", "4", "--image-size", "128", "--val-interval", "1"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("evaluations-e2e")
    make_dataset(data_dir / "datasets" / "waste", n_images=12, size=128, seed=5)
    with Stack(data_dir) as running:
        yield running


def ravenctl(stack: Stack, *args: str, wide: bool = False) -> subprocess.CompletedProcess[str]:
    """JSON output unless args say --output table (then ``wide``: 250 columns, so no line is folded)."""
    env = {**stack.env(), "COLUMNS": "250"} if wide else stack.env()
    return subprocess.run(
        [RAVENCTL, "--output", "json", "--timeout", "30", *args],
        env=env, cwd=ROOT, text=True, capture_output=True, timeout=600,
    )  # fmt: skip


def ok(stack: Stack, *args: str) -> dict:
    result = ravenctl(stack, *args)
    assert result.returncode == 0, f"ravenctl {args}: {result.stderr}"
    return json.loads(result.stdout)


def trained_model(stack: Stack, name: str, seed: str, *options: str) -> dict:
    run = ok(
        stack, "runs", "create", "--name", name, "--dataset", "waste", "--epochs", "1", "--seed", seed, *TINY,
        *options,
    )  # fmt: skip
    assert ravenctl(stack, "runs", "watch", run["name"]).returncode == 0
    finished = ok(stack, "runs", "get", run["name"])
    assert finished["state"] == "SUCCEEDED", finished
    return ok(stack, "models", "get", finished["trained_model"])


def test_an_evaluation_on_the_runs_version_repeats_its_numbers_and_matches_cocoeval(stack: Stack) -> None:
    model = trained_model(stack, "eval-e2e", "1")
    version = model["dataset"]
    assert version.startswith("datasets/")

    recorded = ok(stack, "evaluations", "list", "--model", model["name"])["evaluations"]
    assert [(e["state"], e["dataset_version"], e["split"]) for e in recorded] == [
        ("EVALUATION_STATE_SUCCEEDED", version, "test")
    ]
    created = ok(stack, "evaluations", "create", model["name"], version)
    assert created["state"] in ("EVALUATION_STATE_PENDING", "EVALUATION_STATE_RUNNING")  # quick worker
    watched = ravenctl(stack, "evaluations", "watch", created["name"])
    assert watched.returncode == 0, watched.stdout[-2000:] + watched.stderr[-2000:]
    done = ok(stack, "evaluations", "get", created["name"])
    assert done["state"] == "EVALUATION_STATE_SUCCEEDED" and done["split_sha256"] == model["split_sha256"]
    for plain in (done, recorded[0]):  # the worker's report and the run's record: on full images
        assert plain["inference"]["sliced"] is False and plain["inference"]["tile_size"] == 0, plain
        assert plain["inference"]["max_per_image"] > 0

    # the same checkpoint on the same frozen split: the training's own numbers again
    again, before = done.get("metrics", {}), recorded[0].get("metrics", {})
    assert again.get("bbox_map", -1) == pytest.approx(before.get("bbox_map", -1), abs=1e-9)
    assert again.get("bbox_map_50", -1) == pytest.approx(before.get("bbox_map_50", -1), abs=1e-9)

    store = ArtifactStore(f"file://{stack.data_dir / 'artifacts'}")
    by_kind = {a["kind"]: a for a in done["artifacts"]}
    for kind in ("PREDICTIONS", "EVALUATION_ANALYSIS", "CONFUSION_MATRIX", "PR_CURVES"):
        assert store.sha256(by_kind[kind]["uri"]) == by_kind[kind]["sha256"], kind
    predictions = json.loads(store.read_bytes(by_kind["PREDICTIONS"]["uri"]))
    assert predictions, "the model predicted nothing on test: nothing to compare"

    independent = asyncio.run(cocoeval_on_split(stack, store, version, model["class_names"], predictions))
    assert abs(again.get("bbox_map", -1) - independent) <= 1e-6, (again, independent)

    other = trained_model(stack, "eval-e2e-2", "2", "--tile-size", "64", "--tile-overlap", "16")
    assert other["sliced_inference"] == {"sliced": True, "tile_size": 64, "overlap": 16}
    (tiled_record,) = ok(stack, "evaluations", "list", "--model", other["name"])["evaluations"]
    tiled = ok(stack, "evaluations", "create", other["name"], version)
    assert ravenctl(stack, "evaluations", "watch", tiled["name"]).returncode == 0
    tiled_done = ok(stack, "evaluations", "get", tiled["name"])
    for sliced in (tiled_done, tiled_record):  # the worker's report and the run's record: the same tiles
        way = sliced["inference"]
        assert (way["sliced"], way["tile_size"], way["overlap"]) == (True, 64, 16)
        assert way["merge"] == "class-wise NMS"
        assert way["merge_iou_threshold"] > 0 and way["merge_candidates"] == 10 * way["max_per_image"]
    assert tiled_done["inference"] == tiled_record["inference"]
    shown = ravenctl(stack, "--output", "table", "evaluations", "get", tiled["name"], wide=True)
    assert "sliced: 64 px tiles, 16 px overlap, class-wise NMS" in shown.stdout, shown.stdout

    compared = ok(stack, "models", "compare", model["name"], other["name"])
    assert compared["same_split"] and compared["compared_on"] == f"{version} / test"
    assert [m["inference"]["sliced"] for m in compared["models"]] == [False, True]
    said = ravenctl(stack, "--output", "table", "models", "compare", model["name"], other["name"], wide=True)
    assert f"{other['name']}: sliced: 64 px tiles" in " ".join(said.stdout.split()), said.stdout


async def cocoeval_on_split(
    stack: Stack, store: ArtifactStore, version_name: str, classes: list[str], predictions: list[dict]
) -> float:
    """pycocotools' bbox mAP of ``predictions`` over the version's test split annotation file, built from
    the version's frozen manifest (as the worker builds it)."""
    bearer = ok(stack, "token", "--all")["token"]
    addresses = (f"127.0.0.1:{stack.ports['training_run']}", f"127.0.0.1:{stack.ports['trained_model']}")
    async with RavenClient(*addresses, token=bearer) as client:
        version = await client.get_dataset_version(version_name)
    job_version = events_pb2.TrainingDatasetVersion(
        name=version.name, snapshot_sha256=version.snapshot_sha256, split_sha256=version.split_sha256,
        split_manifest=version.split_manifest, file_manifest=version.file_manifest,
        blob_prefix="dataset_blobs",
    )  # fmt: skip
    scratch = stack.data_dir / "cocoeval"
    prepared = prepare_version_dataset(
        store, with_annotation_layout(store, job_version), scratch, class_names=classes
    )
    assert prepared.test_ann is not None
    coco_gt = COCO()
    coco_gt.dataset = {"info": {}, "licenses": [], **json.loads(prepared.test_ann.read_text())}
    coco_gt.createIndex()
    evaluator = COCOeval(coco_gt, coco_gt.loadRes(predictions), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return float(evaluator.stats[0])
