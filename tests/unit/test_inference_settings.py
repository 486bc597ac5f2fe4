"""Issue 16: what an evaluation records about how it predicted, and its mapping through every layer.

``common/inference_settings.py`` reads it from a model's config (the worker's rule, also after a Struct round
trip as the server holds the config), the record ↔ ``EvaluationInference`` mapping, trained_model's domain ↔
row ↔ proto mapping (and the worker report it comes from), and the words ``ravenctl`` shows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import json_format, struct_pb2

from common.inference_settings import (
    MERGE_CANDIDATES_PER_KEPT,
    MERGE_NMS,
    describe,
    inference_of,
    record_from_proto,
    record_to_proto,
)
from common.mmdet_config import HyperParams, build_config
from common.proto.raven.v1 import evaluations_pb2 as pb
from services.trained_model.adapters.evaluation_repository import to_evaluation, to_row
from services.trained_model.domain.evaluation import Evaluation, EvaluationState, from_training
from services.trained_model.entrypoints.evaluation_convert import evaluation_to_proto, report_from_event

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def config(**tiling: int | float) -> dict[str, object]:
    flat = {f"tiling_{k}": v for k, v in tiling.items()}
    hp = HyperParams(epochs=1, **flat)  # type: ignore[arg-type]
    return build_config("rtmdet_tiny", ["bottle"], hp).data


def struct_round_trip(data: dict[str, object]) -> dict[str, object]:
    """As the server holds a stored config and a job carries it: numbers become floats."""
    message = struct_pb2.Struct()
    message.update(data)
    return json_format.MessageToDict(message)


def test_a_tiled_config_is_sliced_with_the_models_own_merge_settings() -> None:
    data = config(tile_size=640, overlap=96, min_box_visibility=0.5)
    test_cfg = data["model"]["test_cfg"]  # type: ignore[index]
    record = inference_of(data).record()
    assert record == {
        "sliced": True, "tile_size": 640, "overlap": 96, "merge": MERGE_NMS,
        "merge_iou_threshold": test_cfg["nms"]["iou_threshold"],
        "merge_candidates": test_cfg["max_per_img"] * MERGE_CANDIDATES_PER_KEPT,
        "max_per_image": test_cfg["max_per_img"], "score_threshold": test_cfg["score_thr"],
    }  # fmt: skip
    assert record["merge_iou_threshold"] != 0.6  # the template's own (0.65), not the fallback
    assert inference_of(struct_round_trip(data)).record() == record  # the server reads the same


def test_an_untiled_config_predicts_on_full_images() -> None:
    data = config()
    record = inference_of(struct_round_trip(data)).record()
    assert record == {
        "sliced": False,
        "max_per_image": data["model"]["test_cfg"]["max_per_img"],  # type: ignore[index]
        "score_threshold": data["model"]["test_cfg"]["score_thr"],  # type: ignore[index]
    }
    assert inference_of({}).record() == {"sliced": False, "max_per_image": 100, "score_threshold": 0.0}


def test_a_two_stage_detector_merges_with_its_rcnn_settings() -> None:
    two_stage = {
        "raven": {"hyperparams": {"tiling_tile_size": 512.0, "tiling_overlap": 64.0}},
        "model": {"test_cfg": {
            "rpn": {"nms": {"iou_threshold": 0.7}},
            "rcnn": {"score_thr": 0.05, "nms": {"iou_threshold": 0.5}, "max_per_img": 50},
        }},
    }  # fmt: skip
    settings = inference_of(two_stage)
    assert settings.tiling is not None and (settings.tiling.tile_size, settings.tiling.overlap) == (512, 64)
    assert (settings.iou_threshold, settings.max_per_image, settings.score_threshold) == (0.5, 50, 0.05)
    assert settings.merge_candidates == 500


def test_the_record_maps_to_the_message_and_back() -> None:
    sliced = inference_of(config(tile_size=320, overlap=32)).record()
    message = record_to_proto(sliced)
    assert (message.sliced, message.tile_size, message.overlap, message.merge) == (True, 320, 32, MERGE_NMS)
    assert record_from_proto(message) == sliced
    plain = inference_of(config()).record()
    assert not record_to_proto(plain).sliced and record_from_proto(record_to_proto(plain)) == plain
    assert "tile_size" not in record_from_proto(record_to_proto(plain))
    assert record_to_proto({"sliced": True, "from_a_newer_worker": 1}).sliced  # unknown keys left out


def test_trained_model_keeps_what_the_worker_reported_through_row_and_proto() -> None:
    sliced = inference_of(config(tile_size=320, overlap=32)).record()
    event = pb.EvaluationEvent(evaluation_id="e1", attempt=2)
    event.completed.inference.CopyFrom(record_to_proto(sliced))
    report = report_from_event(event)
    assert report is not None and report.kind == "completed" and report.inference == sliced
    old_worker = pb.EvaluationEvent(evaluation_id="e1", attempt=2)
    old_worker.completed.SetInParent()
    assert report_from_event(old_worker).inference is None  # type: ignore[union-attr]

    evaluation = Evaluation("e1", "m1", "datasets/d/versions/1", "test", "alice", NOW, NOW,
                            state=EvaluationState.RUNNING, attempt=2)  # fmt: skip
    assert evaluation.succeed(2, {"bbox_map": 0.5}, [], NOW, report.inference)
    stored = to_evaluation(to_row(evaluation))
    assert stored.inference == sliced
    served = evaluation_to_proto(stored)
    assert served.HasField("inference") and record_from_proto(served.inference) == sliced
    assert served.inference.tile_size == 320 and served.inference.merge_iou_threshold > 0

    unknown = Evaluation("e0", "m1", "datasets/d/versions/1", "test", "alice", NOW, NOW)
    assert to_row(unknown).inference is None and to_evaluation(to_row(unknown)).inference == {}
    assert not evaluation_to_proto(unknown).HasField("inference")  # not recorded: unset, not "false"


def test_a_training_runs_evaluation_carries_the_record_it_is_given() -> None:
    plain = inference_of(config()).record()
    recorded = from_training("e2", model_id="m1", owner="alice", dataset="datasets/d/versions/1",
                             split_sha256="s", training_run_id="r1", metrics={}, artifacts=[], now=NOW,
                             inference=plain)  # fmt: skip
    proto = evaluation_to_proto(to_evaluation(to_row(recorded)))
    assert proto.HasField("inference") and proto.inference.sliced is False
    assert proto.inference.max_per_image == plain["max_per_image"]


def test_described_for_people() -> None:
    record = {"sliced": True, "tile_size": 640, "overlap": 128, "merge": MERGE_NMS,
              "merge_iou_threshold": 0.65}  # fmt: skip
    assert describe(record) == "sliced: 640 px tiles, 128 px overlap, class-wise NMS IoU 0.65"
    assert describe({"sliced": False, "max_per_image": 100}) == "full images"
    assert describe({}) == ""
