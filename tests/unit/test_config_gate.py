"""The config gate: registered classes only, nms/RoI/collate names, scopes, untrusted files merged as data."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from common.config_data import relative_paths
from common.config_gate import (
    ConfigRefused,
    check_config,
    load_untrusted_config,
    problem,
    registered_names,
)
from common.errors import NotFound
from common.mmdet_config import (
    TEMPLATES,
    ConfigInvalid,
    HyperParams,
    _template_source,
    build_config,
    mmdet_config_dir,
)

CLASSES = ("bottle", "tire")
RTMDET = "mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py"


def refused_at(data: dict, path: str, text: str = "") -> ConfigRefused:
    with pytest.raises(ConfigRefused) as caught:
        check_config(data)
    assert caught.value.path == path, str(caught.value)
    assert text in caught.value.message, str(caught.value)
    return caught.value


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_shipped_template_passes_the_gate(template: str) -> None:
    check_config(_template_source(TEMPLATES[template].mmdet_config))
    check_config(build_config(template, CLASSES, HyperParams(epochs=2)).data)


def test_a_dotted_hook_type_is_refused_with_its_key_path() -> None:
    data = {"custom_hooks": [{"type": "EMAHook"}, {"type": "subprocess.getoutput", "cmd": "touch x"}]}
    error = refused_at(data, "custom_hooks[1].type", "dotted name")
    assert str(error).startswith("custom_hooks[1].type: 'subprocess.getoutput' is a dotted name")


@pytest.mark.parametrize(
    ("data", "path", "text"),
    [
        ({"model": {"type": "pseudo_collate"}}, "model.type", "not a registered mmdet/mmengine class"),
        ({"model": {"type": "getoutput"}}, "model.type", "not a registered"),
        ({"model": {"type": ["RTMDet"]}}, "model.type", "not a list"),
        ({"model": {"type": "RTMDet", "test_cfg": {"nms": {"type": "__import__('os').getpid()"}}}},
         "model.test_cfg.nms.type", "nms op"),
        ({"model": {"test_cfg": {"nms": {"type": "RTMDet"}}}}, "model.test_cfg.nms.type", ""),
        ({"model": {"roi_head": {"bbox_roi_extractor": {"roi_layer": {"type": "system"}}}}},
         "model.roi_head.bbox_roi_extractor.roi_layer.type", "RoI op"),
        ({"train_dataloader": {"collate_fn": {"type": "os.system"}}}, "train_dataloader.collate_fn.type", ""),
        ({"optim_wrapper": {"type": "OptimWrapper", "constructor": "os.system"}}, "optim_wrapper.constructor",
         "dotted"),
        ({"model": {"type": "RTMDet", "_scope_": "evil"}}, "model._scope_", "must be one of"),
        ({"default_scope": "mmengine"}, "default_scope", "must be 'mmdet'"),
        ({"custom_imports": {"imports": ["os"]}}, "custom_imports", "not allowed"),
        ({"runner_type": "os.system"}, "runner_type", "dotted"),
    ],
)  # fmt: skip
def test_refusals_name_the_key_path(data: dict, path: str, text: str) -> None:
    refused_at(data, path, text)


def test_what_the_gate_accepts() -> None:
    check_config(
        {
            "default_scope": "mmdet",
            "model": {"type": "RTMDet", "_scope_": "mmdet", "test_cfg": {"nms": {"type": "nms"}}},
            "train_dataloader": {
                "collate_fn": {"type": "pseudo_collate"},
                "dataset": {"type": "CocoDataset"},
            },
            "optim_wrapper": {"type": "OptimWrapper", "constructor": "DefaultOptimWrapperConstructor"},
            "custom_hooks": [{"type": "EMAHook"}],
            "raven": {"class_names": ["{{$HOME}}", "__import__('os')"]},  # data, never a type
        }
    )
    assert problem({"custom_hooks": [{"type": "a.b"}]}).startswith("custom_hooks[0].type: 'a.b'")
    assert problem({}) == ""


def test_fine_tuning_from_a_base_config_with_a_hostile_hook_is_refused() -> None:
    base = copy.deepcopy(build_config("rtmdet_tiny", CLASSES, HyperParams(epochs=2)).data)
    base["custom_hooks"] = [{"type": "subprocess.getoutput", "cmd": "touch /tmp/x"}]
    with pytest.raises(ConfigInvalid) as caught:
        build_config(
            "rtmdet_tiny", CLASSES, HyperParams(epochs=1), base_model_config=base, load_from="runs/r/best.pth"
        )
    (violation,) = caught.value.violations
    assert violation.field == "training_run.base_model"
    assert "custom_hooks[0].type: 'subprocess.getoutput'" in violation.description


def test_the_worker_refuses_a_hostile_config_that_reaches_it(tmp_path: Path) -> None:
    from common.mmdet_fill import fill_dataset
    from tests.unit.test_mmdet_config import _prepared

    data = copy.deepcopy(build_config("rtmdet_tiny", CLASSES, HyperParams(epochs=1)).data)
    data["custom_hooks"] = [{"type": "subprocess.getoutput", "cmd": f"touch {tmp_path / 'canary'}"}]
    with pytest.raises(ConfigInvalid) as caught:
        fill_dataset(data, _prepared(tmp_path, CLASSES), tmp_path / "w", device="cpu", load_from=None,
                     resume_from=None)  # fmt: skip
    assert "custom_hooks[0].type: 'subprocess.getoutput'" in str(caught.value)
    assert not (tmp_path / "canary").exists()


# --- registered names: generated file vs. the live registries ---


def test_registered_names_file_matches_the_installed_registries() -> None:
    from scripts.gen_registered_classes import collect

    assert collect() == json.loads(Path("common/registered_classes.json").read_text()), (
        "mmdet/mmengine registries changed: run python -m scripts.gen_registered_classes and review the diff"
    )


def test_no_accepted_name_is_an_importable_module_and_mmcv_has_the_ops() -> None:
    """A name a registry misses falls back to import_module(name): none of ours may import anything."""
    import importlib.util

    import mmcv.ops

    from common.config_gate import NMS_OPS, ROI_OPS

    names = registered_names()
    for name in names["classes"] | names["functions"] | NMS_OPS | ROI_OPS:
        assert importlib.util.find_spec(name) is None, name
    assert all(callable(getattr(mmcv.ops, op)) for op in NMS_OPS | ROI_OPS)


# --- untrusted files ---


def reader(files: dict[str, str]):  # type: ignore[no-untyped-def]
    def read(key: str) -> bytes:
        if key not in files:
            raise NotFound(key)
        return files[key].encode()

    return read


def test_untrusted_python_config_merges_an_mmdet_base_and_store_bases_as_data() -> None:
    files = {
        "imports/a/config.py": (
            f"_base_ = ['{RTMDET}', '../shared/extra.json']\n"
            "model = dict(bbox_head=dict(num_classes=2),\n"
            "             test_cfg=dict(_delete_=True, nms=dict(type='nms')))\n"
        ),
        "imports/shared/extra.json": json.dumps({"extra": {"text": "from a store base"}}),
    }
    data = load_untrusted_config(reader(files), "imports/a/config.py", mmdet_config_dir())
    assert data["model"]["type"] == "RTMDet" and data["model"]["bbox_head"]["num_classes"] == 2
    assert data["model"]["test_cfg"] == {"nms": {"type": "nms"}}  # _delete_ replaced the base's test_cfg
    assert data["model"]["_scope_"] == "mmdet"  # as MMEngine scopes an mmdet:: base
    assert (
        data["extra"] == {"text": "from a store base"} and data["train_cfg"]["type"] == "EpochBasedTrainLoop"
    )
    assert "_delete_" not in json.dumps(data)


@pytest.mark.parametrize(
    ("files", "text"),
    [
        ({"c.py": "a = '{{ fileDirname }}'\n"}, "'{{' is not allowed"),
        ({"c.py": "_base_ = 'c.py'\nx = 1\n"}, "includes itself"),
        (
            {"c.py": "_base_ = ['a.json', 'b.json']\n", "a.json": '{"x": 1}', "b.json": '{"x": 2}'},
            "same keys",
        ),
        ({"c.py": "_base_ = \"x'+__import__('os').getpid()+'/b.py\"\n"}, "does not resolve"),
        ({"c.py": "custom_hooks = [dict(type='subprocess.getoutput', cmd='id')]\n"}, "custom_hooks[0].type"),
        ({"c.py": "model = dict(type='RTMDet')\n" + "x = 'y'\n" * 200_000}, "larger than"),
    ],
)
def test_untrusted_files_are_refused_without_running_anything(files: dict[str, str], text: str) -> None:
    with pytest.raises(ConfigRefused) as caught:
        load_untrusted_config(reader(files), "c.py", mmdet_config_dir())
    assert text in str(caught.value)


def test_stored_paths_become_relative_to_their_anchor() -> None:
    data = {
        "work_dir": "/srv/w/r1/attempt-1/train",
        "load_from": "/srv/w/r1/attempt-1/weights/base.pth",
        "ds": {"data_root": "/data/sets/waste", "ann_file": "/srv/w/r1/attempt-1/data/val.json"},
        "classes": ["/srv/w/r1/attempt-1x", "plain"],
    }
    out = relative_paths(data, [("/data/sets/waste", "images"), ("/srv/w/r1/attempt-1", "")])
    assert out == {
        "work_dir": "train",
        "load_from": "weights/base.pth",
        "ds": {"data_root": "images", "ann_file": "data/val.json"},
        "classes": ["/srv/w/r1/attempt-1x", "plain"],
    }
