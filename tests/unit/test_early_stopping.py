"""Early stopping (issue 17): ``early_stopping { patience, min_delta }`` is validated in
common.hyperparameters, carried through the proto mapping and becomes MMEngine's EarlyStoppingHook in the
config built as data."""

from __future__ import annotations

import pytest

from common.config_gate import check_config
from common.hyperparameters import EARLY_STOPPING_DEFAULTS, SMALL_DATASET_TRAIN_IMAGES, validate_request
from common.mmdet_config import build_config
from common.mmdet_templates import TEMPLATES
from common.proto.raven.v1 import types_pb2
from services.training_run.adapters.proto_mapping import hyperparameters_from_proto, hyperparameters_to_proto

PREFIX = "training_run.hyperparameters.early_stopping."
TPL = TEMPLATES["rtmdet_tiny"]


def _stopping_hooks(data: dict) -> list[dict]:
    return [h for h in data.get("custom_hooks") or [] if h.get("type") == "EarlyStoppingHook"]


@pytest.mark.parametrize(
    ("asked", "field"),
    [
        ({"patience": -3}, "patience"),
        ({"patience": 10_000}, "patience"),
        ({"min_delta": -0.1}, "min_delta"),
        ({"min_delta": 5.0}, "min_delta"),
        ({"min_delta": float("nan")}, "min_delta"),
    ],
)
def test_bad_values_are_refused_with_the_field_path(asked: dict, field: str) -> None:
    violations = validate_request({"early_stopping": asked}, TPL, pretrained=False).violations
    assert [v.field for v in violations] == [PREFIX + field]
    assert "must be" in violations[0].description and "HyperParams" not in violations[0].description


def test_off_unless_asked_or_a_small_dataset_and_empty_message_takes_the_defaults() -> None:
    for train_images in (0, SMALL_DATASET_TRAIN_IMAGES):  # unknown, or not a small dataset
        unset = validate_request({}, TPL, pretrained=False, train_images=train_images).training
        assert unset.early_stopping_patience is None
        assert _stopping_hooks(build_config("rtmdet_tiny", ["a"], unset).data) == []
    empty = types_pb2.Hyperparameters(early_stopping=types_pb2.EarlyStopping())
    asked = validate_request(hyperparameters_from_proto(empty), TPL, pretrained=False)
    assert asked.violations == []
    assert asked.training.early_stopping_patience == EARLY_STOPPING_DEFAULTS["patience"]
    assert asked.training.early_stopping_min_delta == EARLY_STOPPING_DEFAULTS["min_delta"]


def test_the_hook_in_the_built_config_carries_only_the_numbers() -> None:
    message = types_pb2.Hyperparameters(
        epochs=4, early_stopping=types_pb2.EarlyStopping(patience=2, min_delta=0)
    )
    asked = validate_request(hyperparameters_from_proto(message), TPL, pretrained=False)
    assert asked.violations == []
    resolved = build_config("rtmdet_tiny", ["a"], asked.training)
    assert _stopping_hooks(resolved.data) == [
        {
            "type": "EarlyStoppingHook",
            "monitor": "coco/bbox_mAP",
            "rule": "greater",
            "patience": 2,
            "min_delta": 0.0,
        }
    ]
    check_config(resolved.data)  # the gate's allowlist holds the hook
    assert resolved.hyperparams.early_stopping_patience == 2
    # a fine-tune from this config without early stopping drops the stored hook
    again = build_config(
        "rtmdet_tiny", ["a"], validate_request({}, TPL, pretrained=True).training,
        base_model_config=resolved.data, load_from="models/x.pth",
    )  # fmt: skip
    assert _stopping_hooks(again.data) == []


def test_stored_values_round_trip_to_the_proto() -> None:
    stored = {"epochs": 3, "early_stopping_patience": 1, "early_stopping_min_delta": 0.5}
    message = hyperparameters_to_proto(stored)
    assert message.early_stopping.patience == 1 and message.early_stopping.min_delta == 0.5
    assert hyperparameters_from_proto(message) == {
        "epochs": 3,
        "early_stopping": {"patience": 1, "min_delta": 0.5},
    }
    off = hyperparameters_to_proto(
        {"epochs": 3, "early_stopping_patience": None, "early_stopping_min_delta": None}
    )
    assert not off.HasField("early_stopping")
