"""The ``tiling`` run option: checks naming the field, defaults, the stored flat form and the proto."""

from __future__ import annotations

import pytest

from common.hyperparameters import HyperParams, validate_request
from common.mmdet_config import build_config
from common.mmdet_templates import TEMPLATES
from common.proto.raven.v1 import types_pb2
from common.tiling import Tiling, from_flat, inference_of_config, validate_tiling
from services.training_run.adapters.proto_mapping import hyperparameters_from_proto, hyperparameters_to_proto

P = "training_run.hyperparameters"


def fields(asked: dict[str, object], largest: int = 0) -> dict[str, str]:
    _, violations = validate_tiling(asked, prefix=P, largest_image_side=largest)
    return {v.field: v.description for v in violations}


def test_off_when_unset_or_zero_and_defaults_fill_the_rest() -> None:
    assert validate_tiling(None, prefix=P) == ({}, []) and validate_tiling({}, prefix=P) == ({}, [])
    assert validate_tiling({"tile_size": 0}, prefix=P) == ({}, [])
    flat, violations = validate_tiling({"tile_size": 640}, prefix=P)
    assert violations == [] and from_flat(flat) == Tiling(640, 128, 0.5)
    flat, _ = validate_tiling({"tile_size": 320, "overlap": 0, "min_box_visibility": 1.0}, prefix=P)
    assert flat == {"tiling_tile_size": 320, "tiling_overlap": 0, "tiling_min_box_visibility": 1.0}


@pytest.mark.parametrize(
    ("asked", "field", "words"),
    [
        ({"tile_size": 640, "overlap": 640}, "overlap", "less than tile_size (640)"),
        ({"tile_size": 640, "overlap": 900}, "overlap", "less than tile_size"),
        ({"tile_size": 32}, "tile_size", "between 64 and 4096"),
        ({"tile_size": 5000}, "tile_size", "between 64 and 4096"),
        ({"tile_size": 640, "overlap": -1}, "overlap", "between 0 and 4095"),
        ({"tile_size": 640, "min_box_visibility": 0.0}, "min_box_visibility", "(0, 1]"),
        ({"tile_size": 640, "min_box_visibility": 1.5}, "min_box_visibility", "(0, 1]"),
        ({"overlap": 64}, "tile_size", "required when tiling.overlap is set"),
    ],
)
def test_bad_values_name_their_field(asked: dict[str, object], field: str, words: str) -> None:
    found = fields(asked)
    assert list(found) == [f"{P}.tiling.{field}"], found
    assert words in found[f"{P}.tiling.{field}"]


def test_a_tile_larger_than_the_largest_image_is_refused_where_the_size_is_known() -> None:
    found = fields({"tile_size": 2048}, largest=1600)
    assert "at most the dataset's largest image side (1600 px), got 2048" in found[f"{P}.tiling.tile_size"]
    assert fields({"tile_size": 1600}, largest=1600) == {} and fields({"tile_size": 2048}) == {}


def test_validate_request_carries_tiling_into_the_training_hyperparameters() -> None:
    asked = validate_request({"tiling": {"tile_size": 320, "overlap": 32}}, TEMPLATES["rtmdet_tiny"],
                             pretrained=False, largest_image_side=1600)  # fmt: skip
    assert asked.violations == []
    assert (asked.training.tiling_tile_size, asked.training.tiling_overlap) == (320, 32)
    assert asked.training.tiling_min_box_visibility == 0.5
    bad = validate_request({"tiling": {"tile_size": 320, "overlap": 320}}, None, pretrained=False)
    assert [v.field for v in bad.violations] == [f"{P}.tiling.overlap"]


def test_stored_tiling_goes_back_to_the_proto_and_off_leaves_it_unset() -> None:
    message = hyperparameters_to_proto({"epochs": 3, "tiling_tile_size": 320, "tiling_overlap": 0,
                                        "tiling_min_box_visibility": 0.25})  # fmt: skip
    assert message.tiling == types_pb2.Tiling(tile_size=320, overlap=0, min_box_visibility=0.25)
    assert message.tiling.HasField("overlap")  # a zero overlap that was chosen stays visible
    assert hyperparameters_from_proto(message)["tiling"] == {"tile_size": 320, "overlap": 0,
                                                             "min_box_visibility": 0.25}  # fmt: skip
    off = hyperparameters_to_proto({"epochs": 3, "tiling_tile_size": None, "tiling_overlap": None})
    assert not off.HasField("tiling")


def test_tiling_and_early_stopping_are_refused_together() -> None:
    asked = validate_request({"tiling": {"tile_size": 320}, "early_stopping": {}}, None, pretrained=False)
    assert [v.field for v in asked.violations] == [f"{P}.tiling.tile_size"]
    assert "early_stopping" in asked.violations[0].description


def test_a_tiled_config_keeps_empty_tiles_evaluates_its_last_checkpoint_and_says_how_to_predict() -> None:
    tiling = Tiling(160, 32, 0.5)
    tiled = build_config("rtmdet_tiny", ["bottle"], tiling.applied_to(HyperParams(epochs=2))).data
    plain = build_config("rtmdet_tiny", ["bottle"], HyperParams(epochs=2)).data
    assert tiled["raven"]["sliced_inference"] == {"sliced": True, "tile_size": 160, "overlap": 32}
    assert inference_of_config(tiled) == tiled["raven"]["sliced_inference"]
    assert "sliced_inference" not in plain["raven"] and inference_of_config(plain) == {"sliced": False}
    assert tiled["default_hooks"]["checkpoint"]["save_best"] is None
    assert plain["default_hooks"]["checkpoint"]["save_best"] == "coco/bbox_mAP"
    train = tiled["train_dataloader"]["dataset"]
    assert train["filter_cfg"]["filter_empty_gt"] is False
    crops = [t for t in train["pipeline"] if t["type"] == "RandomCrop"]
    assert crops and all(t["allow_negative_crop"] for t in crops)
    assert plain["train_dataloader"]["dataset"]["filter_cfg"]["filter_empty_gt"] is True


def test_an_out_of_range_field_is_named_even_without_a_tile_size() -> None:
    found = fields({"overlap": 5000})
    assert set(found) == {f"{P}.tiling.overlap", f"{P}.tiling.tile_size"}
