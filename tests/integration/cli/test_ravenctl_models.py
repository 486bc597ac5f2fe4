"""ravenctl's models and evaluations commands (list, get, publish gate, lineage, compare, download, stats,
import, plot) via typer's CliRunner against the in-process fake servers (real gRPC, auth, error encoding)."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from common.proto.raven.v1 import evaluations_pb2, trained_model_pb2, types_pb2
from tests.integration.cli.fake_trained_models import StoredArtifact
from tests.integration.cli.fakes import FakeStack
from tests.integration.cli.ravenctl_support import ravenctl


def add_model(
    stack: FakeStack,
    model_id: str,
    bbox_map: float,
    base: str = "",
    per_class: dict[str, float] | None = None,
) -> trained_model_pb2.TrainedModel:
    val = types_pb2.DetectionMetrics(
        bbox_map=bbox_map,
        bbox_map_50=bbox_map + 0.2,
        per_class_ap=[types_pb2.ClassAP(class_name=k, ap=v) for k, v in (per_class or {}).items()],
    )
    history = [
        types_pb2.EpochMetrics(epoch=e, bbox_map=bbox_map * e / 3, train_loss=1 / e) for e in (1, 2, 3)
    ]
    return stack.models.add(
        trained_model_pb2.TrainedModel(
            name=f"trainedModels/{model_id}",
            display_name="waste",
            version=1,
            base_model=base,
            dataset="waste/v3",
            evaluation=types_pb2.EvaluationResults(val=val, history=history),
        )
    )


def test_models_list_get_publish_gate_and_unpublish(thread_stack: FakeStack) -> None:
    add_model(thread_stack, "m1", 0.42)
    listed = json.loads(ravenctl(thread_stack, "-o", "json", "models", "list").stdout)
    assert [m["name"] for m in listed["trained_models"]] == ["trainedModels/m1"]
    shown = ravenctl(thread_stack, "models", "get", "m1")
    assert shown.exit_code == 0 and "0.420" in shown.stdout
    gated = ravenctl(thread_stack, "models", "publish", "m1", "--min-map", "0.5")
    assert gated.exit_code == 2 and gated.stderr.startswith(
        "error: FAILED_PRECONDITION: bbox mAP 0.420 is below"
    )
    published = ravenctl(thread_stack, "-o", "json", "models", "publish", "m1", "--min-map", "0.4")
    assert published.exit_code == 0 and json.loads(published.stdout)["published"] is True
    only_published = json.loads(
        ravenctl(thread_stack, "-o", "json", "models", "list", "--unpublished").stdout
    )
    assert only_published["trained_models"] == []
    unpublished = ravenctl(thread_stack, "-o", "json", "models", "unpublish", "m1")
    assert json.loads(unpublished.stdout)["published"] is False


def test_lineage_as_tree_and_json(thread_stack: FakeStack) -> None:
    add_model(thread_stack, "root", 0.3)
    add_model(thread_stack, "mid", 0.5, base="trainedModels/root")
    add_model(thread_stack, "leaf", 0.6, base="trainedModels/mid")
    tree = ravenctl(thread_stack, "models", "lineage", "mid")
    assert tree.exit_code == 0, tree.output
    rows = [line for line in tree.stdout.splitlines() if "trainedModels/" in line]
    assert [r.split("trainedModels/")[1].split()[0] for r in rows] == ["root", "mid", "leaf"]
    assert rows[0].index("trainedModels") < rows[1].index("trainedModels") < rows[2].index("trainedModels")
    data = json.loads(ravenctl(thread_stack, "-o", "json", "models", "lineage", "mid").stdout)
    assert data["ancestors"][0]["trained_model"] == "trainedModels/root"
    assert data["descendants"][0]["trained_model"] == "trainedModels/leaf"


def add_evaluation(stack: FakeStack, model: trained_model_pb2.TrainedModel, version: str, n: int) -> None:
    """The model's test evaluation on ``version``: its val numbers stand in for test ones here."""
    stack.evaluations.add(
        evaluations_pb2.Evaluation(
            name=f"evaluations/{model.name.rsplit('/', 1)[1]}-{n}", trained_model=model.name,
            dataset_version=version, split="test", state=evaluations_pb2.EVALUATION_STATE_SUCCEEDED,
            metrics=model.evaluation.val, create_time=Timestamp(seconds=n),
        )
    )  # fmt: skip


def test_compare_two_models_overall_and_per_class(thread_stack: FakeStack) -> None:
    a = add_model(thread_stack, "a", 0.4, per_class={"bottle": 0.5, "tyre": 0.3})
    b = add_model(thread_stack, "b", 0.6, per_class={"bottle": 0.7, "bag": 0.2})
    add_evaluation(thread_stack, a, "datasets/d/versions/1", 1)
    add_evaluation(thread_stack, b, "datasets/d/versions/2", 2)
    refused = ravenctl(thread_stack, "models", "compare", "a", "b")
    assert refused.exit_code == 2 and "no evaluation on the same dataset version and split" in refused.stderr
    add_evaluation(thread_stack, b, "datasets/d/versions/1", 3)
    data = json.loads(ravenctl(thread_stack, "-o", "json", "models", "compare", "a", "b").stdout)
    assert data["compared_on"] == "datasets/d/versions/1 / test" and data["same_split"]
    assert data["classes"] == ["bottle", "tyre", "bag"]
    assert [m["metrics"]["bbox_map"] for m in data["models"]] == [0.4, 0.6]
    assert [m["evaluation"] for m in data["models"]] == ["evaluations/a-1", "evaluations/b-3"]
    assert data["models"][1]["per_class_ap"] == {"bottle": 0.7, "bag": 0.2}
    table = ravenctl(thread_stack, "models", "compare", "a", "b")
    assert table.exit_code == 0 and "per-class AP" in table.stdout and "tyre" in table.stdout
    alone = ravenctl(thread_stack, "models", "compare", "a")
    assert alone.exit_code == 2 and "at least two" in alone.stderr


def test_download_stats_import_and_plot(thread_stack: FakeStack, tmp_path: Path) -> None:
    add_model(thread_stack, "m1", 0.5)
    data = b"weights" * 5000
    thread_stack.models.artifacts[("trainedModels/m1", types_pb2.CHECKPOINT)] = StoredArtifact(
        data, "best.pth"
    )
    thread_stack.models.download_drops = [2]
    got = ravenctl(
        thread_stack,
        "-o",
        "json",
        "models",
        "download",
        "m1",
        "--dest",
        str(tmp_path),
        "--chunk-size",
        "4096",
    )
    assert got.exit_code == 0, got.output
    info = json.loads(got.stdout)
    assert Path(info["path"]).read_bytes() == data and info["size"] == len(data)
    assert thread_stack.models.download_offsets == [0, 8192]
    stats = json.loads(ravenctl(thread_stack, "-o", "json", "models", "stats", "m1").stdout)
    assert stats["trained_model"] == "trainedModels/m1" and stats["evaluation"]["val"]["bbox_map"] == 0.5
    imported = ravenctl(
        thread_stack,
        "-o",
        "json",
        "models",
        "import",
        "--name",
        "rtmdet-coco",
        "--config-uri",
        "base/cfg.py",
        "--checkpoint-uri",
        "base/ckpt.pth",
        "--classes",
        "a,b",
    )
    assert imported.exit_code == 0 and json.loads(imported.stdout)["class_names"] == ["a", "b"]
    png = tmp_path / "m1.png"
    plotted = ravenctl(thread_stack, "models", "plot", "m1", "--out", str(png))
    assert plotted.exit_code == 0, plotted.output
    assert png.read_bytes()[:4] == b"\x89PNG"
