"""Untrusted config files read as plain data (common.config_source): nothing in them is ever executed."""

import pytest

from common.config_source import BaseRef, UnsafeConfig, config_suffix, parse_config, resolve_base

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


def test_plain_data_python_config_evaluates_to_data_and_reports_bases() -> None:
    parsed = parse_config(SAFE, ".py")
    assert parsed.bases == ["mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py", "../shared/schedule.py"]
    assert parsed.data == {
        "max_epochs": 12,
        "model": {"bbox_head": {"num_classes": 3, "loss_cls": {"type": "QualityFocalLoss", "beta": 2.0}}},
        "optim_wrapper": {"optimizer": {"lr": 0.0005, "betas": [0.9, 0.999]}, "clip_grad": None},
        "train_cfg": {"max_epochs": 12, "dynamic_intervals": [[10, 1]]},
        "img_scale": [640, 640],
        "weights": {"a": -1, "b": [1, 2.5, True, None]},
    }


def test_names_are_copies_not_shared_objects() -> None:
    data = parse_config("a = dict(x=[1])\nb = dict(inner=a)\n", ".py").data
    data["a"]["x"].append(2)
    assert data["b"] == {"inner": {"x": [1]}}


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
        "x = 1 / 0",
        "x = -(10**3)",
        "x = {1: 'int key'}",
        "a = '{{ fileDirname }}'",  # MMEngine would paste the file's directory into the source, then exec
        "a = '{{$RAVEN_JWT_SECRET:x}}'",  # ... or an environment variable
        "model = dict(x=1)\n# {{ fileDirname }} in a comment is refused too\n",
    ],
)
def test_hostile_python_configs_are_refused(source: str) -> None:
    with pytest.raises(UnsafeConfig):
        parse_config(source, ".py")


def test_yaml_and_json_configs() -> None:
    parsed = parse_config('{"_base_": "a.json", "model": {"num_classes": 2}}', ".json")
    assert parsed.bases == ["a.json"] and parsed.data == {"model": {"num_classes": 2}}
    assert parse_config("_base_: [a.yaml]\nmodel: {num_classes: 2}\n", ".yaml").bases == ["a.yaml"]
    for text, suffix in [('{"a": "{{ fileDirname }}"}', ".json"), ("a: '{{$HOME}}'\n", ".yaml")]:
        with pytest.raises(UnsafeConfig, match=r"'\{\{' is not allowed"):
            parse_config(text, suffix)
    with pytest.raises(UnsafeConfig, match="custom_imports"):
        parse_config('{"custom_imports": {"imports": ["x"]}}', ".json")
    with pytest.raises(UnsafeConfig):  # the full YAML loader would call os.system here
        parse_config("x: !!python/object/apply:os.system ['id']\n", ".yaml")
    with pytest.raises(UnsafeConfig):
        parse_config('{"_base_": [1]}', ".json")
    with pytest.raises(UnsafeConfig):
        config_suffix("configs/model.pkl")


def test_base_resolution_stays_inside_mmdet_or_the_store() -> None:
    assert resolve_base("mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py", "u/cfg.py") == BaseRef(
        mmdet_path="rtmdet/rtmdet_tiny_8xb32-300e_coco.py"
    )
    assert resolve_base("../shared/s.py", "imports/a/cfg.py") == BaseRef(store_key="imports/shared/s.py")
    hostile = ["../../x.py", "/etc/passwd.py", "mmdet::../../../x.py", "mmcls::x.py", "s3://bucket/x.py",
               "x'+__import__('os').system('touch c')+'/c.py", "a b.py", "(x).py"]  # fmt: skip
    for entry in hostile:
        with pytest.raises(UnsafeConfig):
            resolve_base(entry, "imports/cfg.py")
