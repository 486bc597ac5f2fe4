"""common.hyperparameters: one field list, presence decides the default, zero can be asked for."""

from __future__ import annotations

from common import hyperparameters
from common.hyperparameters import RUN_DEFAULTS, HyperParams, validate_request
from common.mmdet_templates import TEMPLATES
from common.proto.raven.v1 import types_pb2
from services.training_run.adapters.proto_mapping import hyperparameters_from_proto, hyperparameters_to_proto

PREFIX = "training_run.hyperparameters."


def test_the_proto_message_has_exactly_the_one_field_list_and_every_field_has_presence() -> None:
    fields = types_pb2.Hyperparameters.DESCRIPTOR.fields
    # the same names, each once (declaration order in the .proto follows field numbers, not this list)
    assert sorted(f.name for f in fields) == sorted(hyperparameters.FIELDS)
    assert len(set(hyperparameters.FIELDS)) == len(hyperparameters.FIELDS)
    assert all(f.has_presence for f in fields)


def test_zero_that_was_set_is_kept_and_an_unset_field_is_absent() -> None:
    asked = hyperparameters_from_proto(types_pb2.Hyperparameters(seed=0, frozen_stages=0, batch_size=4))
    assert asked == {"seed": 0, "frozen_stages": 0, "batch_size": 4}
    assert hyperparameters_from_proto(types_pb2.Hyperparameters()) == {}
    wire = types_pb2.Hyperparameters.FromString(types_pb2.Hyperparameters(seed=0).SerializeToString())
    assert wire.HasField("seed") and not wire.HasField("epochs")


def test_validate_request_honours_zero_and_fills_run_defaults() -> None:
    tpl = TEMPLATES["faster_rcnn_r50_fpn"]  # default frozen_stages 1, so 0 is a real choice
    asked = validate_request({"seed": 0, "frozen_stages": 0}, tpl, pretrained=True)
    assert asked.violations == []
    assert asked.training == HyperParams(seed=0, frozen_stages=0)
    assert asked.training.resolved_with(tpl.defaults).frozen_stages == 0
    assert asked.run == RUN_DEFAULTS
    absent = validate_request({}, tpl, pretrained=True)
    assert absent.training == HyperParams() and absent.training.resolved_with(tpl.defaults).frozen_stages == 1


def test_a_set_value_outside_its_range_is_refused_even_when_zero() -> None:
    tpl = TEMPLATES["rtmdet_tiny"]
    asked = validate_request({"epochs": 0, "max_attempts": 0, "seed": -1}, tpl, pretrained=False)
    assert {v.field for v in asked.violations} == {PREFIX + f for f in ("epochs", "max_attempts", "seed")}
    random_init = validate_request({"frozen_stages": 0}, tpl, pretrained=False).violations
    assert [v.field for v in random_init] == [PREFIX + "frozen_stages"]
    assert "random backbone weights" in random_init[0].description
    assert validate_request({"frozen_stages": -1}, tpl, pretrained=False).violations == []


def test_run_limits_and_the_split_sum_are_checked_without_a_template() -> None:
    asked = validate_request(
        {"train_fraction": 0.9, "val_fraction": 0.3, "epochs": 9999}, None, pretrained=False
    )
    assert {v.field for v in asked.violations} == {PREFIX + "val_fraction", PREFIX + "epochs"}
    assert asked.run == {"max_attempts": 3, "train_fraction": 0.9, "val_fraction": 0.3, "gpus": 1}


def test_stored_values_go_back_to_the_proto_with_presence() -> None:
    message = hyperparameters_to_proto({"seed": 0, "epochs": 3, "unknown": 1, "image_size": None})
    assert hyperparameters_from_proto(message) == {"seed": 0, "epochs": 3}
