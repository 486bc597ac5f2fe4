"""Pure parts of ravenctl: permission parsing, lineage tree, model comparison, error lines, names."""

from __future__ import annotations

import grpc
import pytest
import typer
from rich.console import Console

from common.auth import USER_PERMISSIONS, Permission
from common.client import RavenError
from common.errors import FieldViolation
from common.proto.raven.v1 import evaluations_pb2, trained_model_pb2, types_pb2
from services.cli.context import model_name, report, run_name
from services.cli.main import _permissions
from services.cli.model_compare import Choice, comparison_data
from services.cli.models import lineage_tree


def test_names_accept_bare_ids() -> None:
    assert run_name("abc") == "trainingRuns/abc" and run_name("trainingRuns/abc") == "trainingRuns/abc"
    assert model_name("m") == "trainedModels/m" and model_name("trainedModels/m") == "trainedModels/m"


def test_permissions_by_value_or_name_plus_flags() -> None:
    assert _permissions(["models.view", "publish_models"], False, False) == [
        "models.publish",
        "models.view",
    ]
    assert set(_permissions([], True, False)) == USER_PERMISSIONS
    assert _permissions([], False, True) == [Permission.SUPERADMIN]
    with pytest.raises(typer.Exit):
        _permissions([], False, False)
    with pytest.raises(typer.Exit):  # the worker permission only in a worker token (--worker)
        _permissions(["worker"], False, False)


def test_report_prints_code_message_and_violations(capsys: pytest.CaptureFixture[str]) -> None:
    error = RavenError(grpc.StatusCode.INVALID_ARGUMENT, "bad run", [FieldViolation("dataset", "required")])
    exit_ = report(error)
    assert exit_.exit_code == 2
    assert capsys.readouterr().err == "error: INVALID_ARGUMENT: bad run\n  - dataset: required\n"


def node(name: str, base: str = "", depth: int = 0) -> trained_model_pb2.LineageNode:
    return trained_model_pb2.LineageNode(
        trained_model=name, display_name=name, version=1, base_model=base, depth=depth
    )


def test_lineage_tree_nests_ancestors_model_and_descendants() -> None:
    lineage = trained_model_pb2.ModelLineage(
        model=node("b", "a"),
        ancestors=[node("a", depth=-1)],
        descendants=[node("c", "b", 1), node("d", "b", 1), node("e", "c", 2)],
    )
    console = Console(width=200, record=True)
    console.print(lineage_tree(lineage))
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    indent = {line.strip("│├└─ ").split()[0]: len(line) - len(line.lstrip("│├└─ ")) for line in lines}
    assert indent["a"] < indent["b"] < indent["c"] == indent["d"] < indent["e"]


def test_lineage_labels_show_the_dataset_version_snapshot_and_split() -> None:
    trained = node("v", depth=0)
    trained.dataset, trained.dataset_snapshot_sha256, trained.split_sha256 = (
        "datasets/d/versions/3",
        "a" * 64,
        "b" * 64,
    )
    console = Console(width=200, record=True)
    console.print(lineage_tree(trained_model_pb2.ModelLineage(model=trained)))
    text = console.export_text()
    assert "datasets/d/versions/3" in text and "snapshot aaaaaaaaaaaa split bbbbbbbbbbbb" in text


def evaluation(name: str, bbox_map: float, per_class: dict[str, float]) -> evaluations_pb2.Evaluation:
    metrics = types_pb2.DetectionMetrics(
        bbox_map=bbox_map, per_class_ap=[types_pb2.ClassAP(class_name=k, ap=v) for k, v in per_class.items()]
    )
    return evaluations_pb2.Evaluation(name=f"evaluations/{name}", dataset_version="datasets/d/versions/1",
                                      split="test", metrics=metrics)  # fmt: skip


def test_comparison_unions_classes_in_first_seen_order() -> None:
    models = [trained_model_pb2.TrainedModel(name=n) for n in ("x", "y")]
    choice = Choice([evaluation("x", 0.1, {"b": 0.2, "a": 0.3}), evaluation("y", 0.2, {"c": 0.4, "a": 0.5})],
                    True, "datasets/d/versions/1 / test")  # fmt: skip
    data = comparison_data(models, choice)
    assert data["classes"] == ["b", "a", "c"]
    assert [m["metrics"]["bbox_map"] for m in data["models"]] == [0.1, 0.2]
    assert data["models"][1]["per_class_ap"] == {"c": 0.4, "a": 0.5}
