"""ravenctl's tables at COLUMNS=80: no line wider than the terminal, every header word whole, COCO's -1 as n/a
in tables and absent from JSON. Against the fake servers (real gRPC), with realistic 32-character ids."""

from __future__ import annotations

import json
import uuid

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from typer.testing import Result

from common.proto.raven.v1 import evaluations_pb2, trained_model_pb2, training_run_pb2, types_pb2
from tests.integration.cli.fakes import FakeStack
from tests.integration.cli.ravenctl_support import ravenctl

NARROW = {"COLUMNS": "80"}
RUN_HEADERS = (
    "NAME",
    "ID",
    "DISPLAY NAME",
    "STATE",
    "PHASE",
    "EPOCH",
    "DATASET",
    "TEMPLATE",
    "MODEL",
    "CREATED",
)
MODEL_HEADERS = (
    "NAME",
    "ID",
    "DISPLAY NAME",
    "VER",
    "mAP",
    "mAP50",
    "PUBLISHED",
    "DATASET",
    "BASE MODEL",
    "CREATED",
)


def header_words(text: str) -> list[set[str]]:
    """The words in the header rows (between the ┏ top border and the ┡ separator) of each table."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("┏"):
            current = set()
        elif line.startswith("┡") and current is not None:
            tables.append(current)
            current = None
        elif current is not None:
            current.update(line.replace("┃", " ").split())
    return tables


def assert_fits_with_whole_headers(
    result: Result, headers: tuple[str, ...], required: tuple[str, ...]
) -> None:
    """No line over 80 columns; every word in a header row is a whole header word (a broken one leaves a
    fragment such as PUBLISH); the required columns are all there."""
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
    whole = {word for header in headers for word in header.split()}
    found = header_words(result.stdout)
    assert found, result.stdout
    for words in found:
        assert words <= whole | {f"#{i}" for i in range(1, 10)}, (words - whole, result.stdout)
    seen = set().union(*found)
    for header in required:
        assert set(header.split()) <= seen, (header, result.stdout)


def hex_id() -> str:
    return uuid.uuid4().hex


def test_runs_list_fits_80_columns(thread_stack: FakeStack) -> None:
    for state in (types_pb2.RUNNING, types_pb2.SUCCEEDED, types_pb2.CANCELLING):
        run = training_run_pb2.TrainingRun(
            name=f"trainingRuns/{hex_id()}", state=state,
            display_name="waste detector with a long display name",
            dataset="waste/2026-11/drone-survey-v3", model_template="faster_rcnn_r50_fpn",
            trained_model=f"trainedModels/{hex_id()}",
            progress=types_pb2.ProgressSnapshot(phase=types_pb2.TRAINING, epoch=12, max_epochs=300),
        )  # fmt: skip
        run.create_time.GetCurrentTime()
        thread_stack.runs.add(run)
    result = ravenctl(thread_stack, "runs", "list", env=NARROW)
    assert_fits_with_whole_headers(result, RUN_HEADERS, ("ID", "DISPLAY NAME", "STATE", "EPOCH"))
    assert "CANCELLING" in result.stdout and "SUCCEEDED" in result.stdout
    wide = ravenctl(thread_stack, "runs", "list", env={"COLUMNS": "250"})
    assert "trainingRuns/" in wide.stdout and "TEMPLATE" in wide.stdout and "CREATED" in wide.stdout


def add_model(stack: FakeStack, bbox_map_s: float, per_class: dict[str, float]) -> str:
    name = f"trainedModels/{hex_id()}"
    val = types_pb2.DetectionMetrics(
        bbox_map=0.61, bbox_map_50=0.83, bbox_map_75=0.7, bbox_map_s=bbox_map_s, bbox_map_m=0.5,
        bbox_map_l=-1,
        per_class_ap=[types_pb2.ClassAP(class_name=k, ap=v) for k, v in per_class.items()],
    )  # fmt: skip
    model = trained_model_pb2.TrainedModel(
        name=name, display_name="waste detector", version=3, published=True, dataset="waste/2026-11/drone-v3",
        base_model=f"trainedModels/{hex_id()}", evaluation=types_pb2.EvaluationResults(val=val),
    )  # fmt: skip
    model.create_time.GetCurrentTime()
    stack.models.add(model)
    return name


def test_models_list_fits_80_columns(thread_stack: FakeStack) -> None:
    add_model(thread_stack, -1, {"bottle": 0.5})
    add_model(thread_stack, 0.25, {"bottle": 0.5})
    result = ravenctl(thread_stack, "models", "list", env=NARROW)
    assert_fits_with_whole_headers(result, MODEL_HEADERS, ("ID", "DISPLAY NAME", "mAP", "PUBLISHED"))


@pytest.mark.parametrize("count", [2, 3])
def test_models_compare_fits_80_columns_with_na_for_minus_one(thread_stack: FakeStack, count: int) -> None:
    names = [
        add_model(thread_stack, -1 if i == 0 else 0.2, {"bottle": 0.4 + i / 10, "tyre": -1})
        for i in range(count)
    ]
    for i, name in enumerate(names):
        model = thread_stack.models.models[name]
        thread_stack.evaluations.add(
            evaluations_pb2.Evaluation(
                name=f"evaluations/{hex_id()}", trained_model=name, dataset_version="datasets/d/versions/1",
                split="test", state=evaluations_pb2.EVALUATION_STATE_SUCCEEDED, metrics=model.evaluation.val,
                create_time=Timestamp(seconds=i),
            )
        )  # fmt: skip
    result = ravenctl(thread_stack, "models", "compare", *names, env=NARROW)
    legend = ("#", "NAME", "DISPLAY NAME")
    assert_fits_with_whole_headers(result, ("METRIC", "CLASS", *legend), ("METRIC", "CLASS", *legend))
    assert "-1.000" not in result.stdout and "n/a" in result.stdout
    assert all(name.split("/")[1] in result.stdout for name in names)  # the legend names each column
    bbox_map_l = next(line for line in result.stdout.splitlines() if "bbox_map_l" in line)
    assert bbox_map_l.count("n/a") == count
    data = json.loads(ravenctl(thread_stack, "-o", "json", "models", "compare", *names).stdout)
    first = data["models"][0]["metrics"]
    assert "bbox_map_l" not in first and "bbox_map_s" not in first
    assert data["models"][1]["metrics"]["bbox_map_s"] == 0.2
    assert (
        "tyre" not in data["models"][0]["per_class_ap"] and data["models"][0]["per_class_ap"]["bottle"] == 0.4
    )


def test_json_of_a_model_leaves_out_unmeasured_metrics(thread_stack: FakeStack) -> None:
    name = add_model(thread_stack, -1, {"bottle": 0.5, "tyre": -1})
    got = json.loads(ravenctl(thread_stack, "-o", "json", "models", "get", name).stdout)
    val = got["evaluation"]["val"]
    assert "bbox_map_s" not in val and "bbox_map_l" not in val and val["bbox_map"] == 0.61
    assert val["per_class_ap"] == [{"class_name": "bottle", "ap": 0.5}, {"class_name": "tyre"}]
    table = ravenctl(thread_stack, "models", "get", name, env=NARROW)
    assert "n/a" in table.stdout and "-1.000" not in table.stdout
