"""Static config checks (untrusted MMEngine configs) and the checkpoint head / class count rule."""

import pytest

from common.errors import InvalidArgument
from services.trained_model.adapters.config_safety import (
    BaseRef,
    UnsafeConfig,
    base_entries,
    config_suffix,
    resolve_base,
)
from services.trained_model.adapters.model_import import head_class_problems
from services.trained_model.adapters.repository import Cursor
from services.trained_model.service_layer import page_tokens

SAFE = """\
'''A fine-tuning config.'''
_base_ = ['mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py', '../shared/schedule.py']
max_epochs = 12
model = dict(bbox_head=dict(num_classes=3, loss_cls=dict(type='QualityFocalLoss', beta=2.0)))
optim_wrapper = dict(optimizer=dict(lr=0.004 / 8, betas=(0.9, 0.999)), clip_grad=None)
train_cfg = dict(max_epochs=max_epochs, dynamic_intervals=[(10, 1)])
img_scale = (640, 640)
weights = {'a': -1, 'b': [1, 2.5, True, None]}
"""


def test_plain_data_python_config_passes_and_reports_bases() -> None:
    assert base_entries(SAFE, ".py") == [
        "mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py",
        "../shared/schedule.py",
    ]


@pytest.mark.parametrize(
    "source",
    [
        "import os\nmodel = dict(num_classes=1)",
        "from os import system",
        "x = __import__('os').system('id')",
        "x = open('/etc/passwd').read()",
        "x = dict.__class__",
        "x = [1][0]",
        "x = eval('1')",
        "x = (lambda: 1)()",
        "x = [i for i in range(3)]",
        "x = f'{1}'",
        "x = {{_base_.model}}",
        "x = 'a' * 10**12",
        "y = 2\nx = y * 1000000000000",
        "x = print",
        "custom_imports = dict(imports=['evil'], allow_failed_imports=False)",
        "__builtins__ = {}",
        "a.b = 1",
        "x = dict(**{'a': 1})",
        "dict = 1\nx = dict(a=1)",
        "if True:\n    x = 1",
        "x = 1\ndel x",
        "x = b'bytes'",
        "def f():\n    pass",
    ],
)
def test_hostile_python_configs_are_refused(source: str) -> None:
    with pytest.raises(UnsafeConfig):
        base_entries(source, ".py")


def test_yaml_and_json_configs() -> None:
    assert base_entries('{"_base_": "a.json", "model": {"num_classes": 2}}', ".json") == ["a.json"]
    assert base_entries("_base_: [a.yaml]\nmodel: {num_classes: 2}\n", ".yaml") == ["a.yaml"]
    with pytest.raises(UnsafeConfig, match="custom_imports"):
        base_entries('{"custom_imports": {"imports": ["x"]}}', ".json")
    with pytest.raises(UnsafeConfig):  # the full YAML loader would call os.system here
        base_entries("x: !!python/object/apply:os.system ['id']\n", ".yaml")
    with pytest.raises(UnsafeConfig):
        base_entries('{"_base_": [1]}', ".json")
    with pytest.raises(UnsafeConfig):
        config_suffix("configs/model.pkl")


def test_base_resolution_stays_inside_mmdet_or_the_store() -> None:
    assert resolve_base("mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py", "u/cfg.py") == BaseRef(
        mmdet_path="rtmdet/rtmdet_tiny_8xb32-300e_coco.py"
    )
    assert resolve_base("../shared/s.py", "imports/a/cfg.py") == BaseRef(store_key="imports/shared/s.py")
    for entry in ["../../x.py", "/etc/passwd.py", "mmdet::../../../x.py", "mmcls::x.py", "s3://bucket/x.py"]:
        with pytest.raises(UnsafeConfig):
            resolve_base(entry, "imports/cfg.py")


def test_head_class_count_rule() -> None:
    rtmdet = {f"bbox_head.rtm_cls.{i}.weight": (3, 96, 1, 1) for i in range(3)}
    assert head_class_problems({**rtmdet, "rpn_head.rpn_cls.weight": (9, 256, 1, 1)}, 3) == []
    assert head_class_problems(rtmdet, 4)
    faster = {"roi_head.bbox_head.fc_cls.weight": (4, 1024), "rpn_head.rpn_cls.weight": (3, 256, 1, 1)}
    assert head_class_problems(faster, 3) == []
    assert head_class_problems(faster, 5)
    retina = {"bbox_head.retina_cls.weight": (27, 256, 3, 3)}  # 9 anchors x 3 classes
    assert head_class_problems(retina, 3) == [] and head_class_problems(retina, 4)
    assert head_class_problems({"backbone.conv1.weight": (64, 3, 7, 7)}, 3)  # no head at all


def test_page_tokens_round_trip_and_reject_tampering() -> None:
    token = page_tokens.encode(Cursor("2026-01-01T00:00:00+00:00", "m1"), "q1")
    assert page_tokens.decode(token, "q1") == Cursor("2026-01-01T00:00:00+00:00", "m1")
    assert page_tokens.decode("", "q1") is None
    for bad, fp in [(token, "other-query"), ("not-a-token", "q1"), (token[:-3], "q1")]:
        with pytest.raises(InvalidArgument) as caught:
            page_tokens.decode(bad, fp)
        assert caught.value.violations[0].field == "page_token"
