"""Issue 17: templates' early stopping for small datasets, ``patience`` 0 = off, and the worker's warm-up.

A run that leaves ``early_stopping`` unset on a dataset with fewer than SMALL_DATASET_TRAIN_IMAGES train
images gets its template's default (patience in epochs' worth of validations, min_delta 0.001), stored in its
hyperparameters; ``patience`` 0 turns early stopping off, default included. In the training child MMEngine's
``EarlyStoppingHook`` counts no validation before val bbox mAP first rises above 0.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from common.config_gate import check_config
from common.dataset_refs import DatasetHeader
from common.hyperparameters import SMALL_DATASET_TRAIN_IMAGES, validate_request
from common.mmdet_config import build_config
from common.mmdet_templates import TEMPLATES
from common.proto.raven.v1 import types_pb2
from services.training_run.adapters.proto_mapping import hyperparameters_from_proto, hyperparameters_to_proto

TPL = TEMPLATES["rtmdet_tiny"]
SMALL = 42  # the demo dataset's train split (60 images, 70 %)


def _stopping(values: dict, template: str = "rtmdet_tiny", train_images: int = SMALL) -> tuple:
    asked = validate_request(values, TEMPLATES[template], pretrained=False, train_images=train_images)
    assert asked.violations == []
    return asked.training.early_stopping_patience, asked.training.early_stopping_min_delta


def test_a_small_dataset_gets_its_templates_default_in_epochs_worth_of_validations() -> None:
    # rtmdet_tiny: 15 epochs; 30 epochs validated every 5 (its defaults) -> patience 3 validations
    assert _stopping({}) == (3, 0.001)
    assert _stopping({"val_interval": 1}) == (15, 0.001)
    assert _stopping({"epochs": 100, "val_interval": 2}) == (8, 0.001)  # ceil(15 / 2)
    assert _stopping({}, "faster_rcnn_r50_fpn") == (5, 0.001)  # 12 epochs, validated every epoch
    assert _stopping({}, train_images=SMALL_DATASET_TRAIN_IMAGES - 1) == (3, 0.001)
    # the hook is in the built config, which the config gate accepts
    asked = validate_request({}, TPL, pretrained=False, train_images=SMALL)
    data = build_config("rtmdet_tiny", ["a"], asked.training).data
    check_config(data)
    assert [h["patience"] for h in data["custom_hooks"] if h["type"] == "EarlyStoppingHook"] == [3]
    # stored, the run shows it as its early_stopping
    shown = hyperparameters_to_proto(asked.training.as_dict())
    assert shown.early_stopping.patience == 3 and shown.early_stopping.min_delta == 0.001


@pytest.mark.parametrize(
    ("values", "train_images", "why"),
    [
        ({}, 0, "unknown size"),
        ({}, SMALL_DATASET_TRAIN_IMAGES, "not a small dataset"),
        ({"epochs": 20}, SMALL, "4 validations: the first sets the best, 3 more end at the last epoch"),
        ({"epochs": 16, "val_interval": 1}, SMALL, "16 validations, patience 15"),
        ({"tiling": {"tile_size": 320}}, SMALL, "tiling does not go with early stopping"),
    ],
)
def test_no_default_where_it_cannot_apply(values: dict, train_images: int, why: str) -> None:
    assert _stopping(values, train_images=train_images) == (None, None), why


def test_patience_0_turns_early_stopping_off_default_included() -> None:
    message = types_pb2.Hyperparameters(early_stopping=types_pb2.EarlyStopping(patience=0))
    values = hyperparameters_from_proto(message)
    assert values == {"early_stopping": {"patience": 0}}
    asked = validate_request(values, TPL, pretrained=False, train_images=SMALL)
    assert asked.violations == [] and asked.training.early_stopping_patience == 0
    data = build_config("rtmdet_tiny", ["a"], asked.training).data
    assert [h for h in data.get("custom_hooks") or [] if h["type"] == "EarlyStoppingHook"] == []
    shown = hyperparameters_to_proto(asked.training.as_dict())  # the run says it is off, asked so
    assert shown.HasField("early_stopping") and shown.early_stopping.patience == 0
    # with tiling: off is not early stopping, so nothing is refused
    tiled = validate_request({**values, "tiling": {"tile_size": 320}}, TPL, pretrained=False)
    assert tiled.violations == []
    # an explicit early_stopping is kept as asked on a small dataset
    assert _stopping({"early_stopping": {"patience": 1, "min_delta": 0.05}}) == (1, 0.05)


def test_a_plain_datasets_train_images_come_from_its_files() -> None:
    assert DatasetHeader(["a"], 60, split_given=False).train_images(0.7) == 42
    assert DatasetHeader(["a"], 60, split_given=True).train_images(0.7) == 60  # train.json's own images


def test_the_training_childs_hook_waits_for_a_map_above_0() -> None:
    pytest.importorskip("mmengine")
    from mmengine.config import Config

    from services.trainer_worker.adapters.early_stopping import WarmUpEarlyStoppingHook, take_early_stopping

    asked = validate_request({"early_stopping": {"patience": 2}}, TPL, pretrained=False)
    cfg = Config(build_config("rtmdet_tiny", ["a"], asked.training).data)
    (hook,) = take_early_stopping(cfg)
    assert isinstance(hook, WarmUpEarlyStoppingHook)
    assert not [h for h in cfg.custom_hooks if h["type"] == "EarlyStoppingHook"]
    assert (hook.patience, hook.min_delta, hook.monitor) == (2, 0.001, "coco/bbox_mAP")

    runner = SimpleNamespace(train_loop=SimpleNamespace(stop_training=False), logger=logging.getLogger("t"))
    hook.before_run(runner)
    scores = [0.0, 0.0, 0.0, 0.0, 0.2, 0.2005, 0.25, 0.2505, 0.2508]
    stopped_at = None
    for index, score in enumerate(scores, start=1):
        hook.after_val_epoch(runner, {"coco/bbox_mAP": score})
        if runner.train_loop.stop_training:
            stopped_at = index
            break
    # four validations at 0 do not count; 0.2 is the first best, 0.2005 no gain (1), 0.25 a gain, then
    # 0.2505 (1) and 0.2508 (2): patience 2 spent
    assert stopped_at == 9
