"""Config builder: templates, hyperparameters, hostile class names, URL-free weights, fine-tuning, filling."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf import json_format, struct_pb2

from common.hyperparameters import validate_request
from common.mmdet_config import (
    TEMPLATES,
    ConfigInvalid,
    HyperParams,
    build_config,
    config_sha256,
    find_urls,
)
from common.mmdet_fill import fill_dataset
from common.proto.raven.v1 import types_pb2
from services.training_run.adapters.proto_mapping import hyperparameters_from_proto

CLASSES = ("bottle", "tire", "bag")
HOSTILE = (
    "it's",
    'say "hi"',
    "line\nbreak",
    "__import__('os').system('touch /tmp/pwned')",
    "'''; import os #",
    "{{_base_.model}}",
    "http://example.com/evil.pth",
)


@dataclass(frozen=True)
class Prepared:  # the shape of services.trainer_worker.domain.dataset.PreparedDataset the filler reads
    image_root: Path
    train_ann: Path
    val_ann: Path
    test_ann: Path | None
    class_names: tuple[str, ...]


def struct_round_trip(data: dict) -> dict:
    """What a config looks like after travelling in a google.protobuf.Struct (numbers become doubles)."""
    message = json_format.ParseDict(data, struct_pb2.Struct())
    return json_format.MessageToDict(message)


def pipelines(cfg: dict, split: str) -> list[dict]:
    return cfg[f"{split}_dataloader"]["dataset"]["pipeline"]


def init_cfgs(node: object) -> list[object]:
    if isinstance(node, dict):
        found = [node["init_cfg"]] if "init_cfg" in node else []
        return found + [i for v in node.values() for i in init_cfgs(v)]
    if isinstance(node, list):
        return [i for v in node for i in init_cfgs(v)]
    return []


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_resolves_to_plain_json_without_urls(template: str) -> None:
    resolved = build_config(template, CLASSES, HyperParams())

    assert json.loads(json.dumps(resolved.data)) == resolved.data
    assert find_urls(resolved.data) == []
    assert all(init is None for init in init_cfgs(resolved.data["model"]))
    assert resolved.data["load_from"] is None
    assert resolved.sha256 == config_sha256(resolved.data) and len(resolved.sha256) == 64
    assert "num_classes=3" in resolved.text
    heads = [n for n in _walk(resolved.data["model"]) if "num_classes" in n]
    assert heads and all(n["num_classes"] in (3, 1) for n in heads)  # 1 only for a class-agnostic RPN
    assert resolved.data["model"]["backbone"]["frozen_stages"] == -1  # random init: nothing frozen


def test_faster_rcnn_sets_every_roi_head_but_keeps_the_rpn_class_agnostic() -> None:
    model = build_config("faster_rcnn_r50_fpn", CLASSES, HyperParams()).data["model"]
    assert model["roi_head"]["bbox_head"]["num_classes"] == 3
    assert model["rpn_head"].get("num_classes", 1) == 1
    assert model["backbone"]["norm_eval"] is False  # BN statistics must be learnt from random init


def test_hyperparameters_land_where_mmdet_reads_them() -> None:
    hp = HyperParams(epochs=7, batch_size=3, learning_rate=0.0123, image_size=320, seed=42, val_interval=2)
    data = build_config("rtmdet_tiny", CLASSES, hp).data

    assert data["train_cfg"] == {"type": "EpochBasedTrainLoop", "max_epochs": 7, "val_interval": 2}
    assert data["train_dataloader"]["batch_size"] == 3
    assert data["optim_wrapper"]["optimizer"]["lr"] == 0.0123
    assert data["randomness"]["seed"] == 42
    assert max(s["end"] for s in data["param_scheduler"]) == 7
    assert all(s["by_epoch"] for s in data["param_scheduler"])
    val_resize = next(t for t in pipelines(data, "val") if t["type"] == "Resize")
    assert val_resize["scale"] == [320, 320]
    assert next(t for t in pipelines(data, "train") if t["type"] == "Pad")["size"] == [320, 320]
    assert all(t["type"] not in ("CachedMosaic", "CachedMixUp") for t in pipelines(data, "train"))
    checkpoint = data["default_hooks"]["checkpoint"]
    assert (checkpoint["save_best"], checkpoint["rule"], checkpoint["interval"]) == (
        "coco/bbox_mAP",
        "greater",
        1,
    )
    assert 1 <= checkpoint["max_keep_ckpts"] <= 3
    assert all(b == {"type": "LocalVisBackend"} for b in data["visualizer"]["vis_backends"])
    assert data["raven"]["hyperparams"]["epochs"] == 7


def test_step_schedule_scales_its_milestones_with_epochs() -> None:
    data = build_config("retinanet_r18_fpn", CLASSES, HyperParams(epochs=24, image_size=256)).data
    step = next(s for s in data["param_scheduler"] if s["type"] == "MultiStepLR")
    assert step["end"] == 24 and step["milestones"] == [16, 22]
    resize = next(t for t in pipelines(data, "train") if t["type"] == "Resize")
    assert resize["scale"] == [256, 256]


def test_defaults_fill_unset_fields_and_keep_val_interval_within_epochs() -> None:
    resolved = build_config("rtmdet_tiny", CLASSES, HyperParams(epochs=2))
    assert resolved.hyperparams.epochs == 2 and resolved.hyperparams.val_interval == 2
    assert resolved.hyperparams.batch_size == TEMPLATES["rtmdet_tiny"].defaults.batch_size


def test_hostile_class_names_stay_plain_strings() -> None:
    resolved = build_config("rtmdet_tiny", HOSTILE, HyperParams(epochs=2))

    for split in ("train", "val", "test"):
        assert resolved.data[f"{split}_dataloader"]["dataset"]["metainfo"]["classes"] == list(HOSTILE)
    assert resolved.data["raven"]["class_names"] == list(HOSTILE)
    # The text is for people; parsing it (never executing) shows only dict(...) calls and literal strings.
    tree = ast.parse(resolved.text)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert calls and all(isinstance(c.func, ast.Name) and c.func.id == "dict" for c in calls)
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert set(HOSTILE) <= literals
    assert not Path("/tmp/pwned").exists()


def test_backbone_checkpoint_is_an_artifact_key_filled_with_a_local_path(tmp_path: Path) -> None:
    resolved = build_config(
        "rtmdet_tiny",
        CLASSES,
        HyperParams(epochs=2, frozen_stages=1),
        backbone_checkpoint="weights/cspnext.pth",
    )
    init = resolved.data["model"]["backbone"]["init_cfg"]
    assert init == {"type": "Pretrained", "checkpoint": "weights/cspnext.pth", "prefix": "backbone."}
    assert resolved.data["model"]["backbone"]["frozen_stages"] == 1

    prepared = _prepared(tmp_path, CLASSES)
    local = tmp_path / "cspnext.pth"
    cfg = fill_dataset(
        resolved.data,
        prepared,
        tmp_path / "work",
        device="cpu",
        load_from=None,
        resume_from=None,
        backbone_checkpoint=local,
    )
    assert cfg.model.backbone.init_cfg.checkpoint == str(local)
    with pytest.raises(ConfigInvalid, match="backbone"):
        fill_dataset(resolved.data, prepared, tmp_path / "w", device="cpu", load_from=None, resume_from=None)


def test_fine_tune_uses_the_base_config_and_loads_its_checkpoint(tmp_path: Path) -> None:
    base = build_config("rtmdet_tiny", CLASSES, HyperParams(epochs=3, image_size=320))
    stored = struct_round_trip(base.data)
    tuned = build_config(
        "rtmdet_tiny",
        ("bottle", "can"),
        HyperParams(epochs=2, learning_rate=0.001),
        base_model_config=stored,
        load_from="models/m1/best.pth",
    )

    assert tuned.data["load_from"] == "models/m1/best.pth"
    assert tuned.data["model"]["bbox_head"]["num_classes"] == 2
    assert tuned.data["optim_wrapper"]["optimizer"]["lr"] == 0.001
    assert tuned.data["raven"]["fine_tune"] is True
    side = TEMPLATES["rtmdet_tiny"].defaults.image_size
    assert next(t for t in pipelines(tuned.data, "val") if t["type"] == "Resize")["scale"] == [side, side]
    prepared = _prepared(tmp_path, ("can", "bottle"))
    local = tmp_path / "best.pth"
    cfg = fill_dataset(tuned.data, prepared, tmp_path, device="cpu", load_from=local, resume_from=None)
    assert cfg.load_from == str(local) and cfg.resume is False
    with pytest.raises(ConfigInvalid, match="base model checkpoint"):
        fill_dataset(tuned.data, prepared, tmp_path, device="cpu", load_from=None, resume_from=None)
    with pytest.raises(ConfigInvalid) as err:
        build_config("rtmdet_tiny", CLASSES, HyperParams(), base_model_config=stored)
    assert err.value.violations[0].field == "training_run.base_model"


def test_invalid_hyperparameters_are_reported_per_field() -> None:
    hp = HyperParams(
        epochs=0, batch_size=65, learning_rate=1.5, frozen_stages=9, image_size=100, seed=-1, val_interval=3
    )
    with pytest.raises(ConfigInvalid) as err:
        build_config("rtmdet_tiny", CLASSES, hp)
    fields = {v.field for v in err.value.violations}
    prefix = "training_run.hyperparameters."
    assert {
        prefix + f for f in ("epochs", "batch_size", "learning_rate", "frozen_stages", "image_size", "seed")
    } <= fields
    assert all(v.description for v in err.value.violations)
    assert HyperParams(epochs=2, val_interval=3).validate()[0].field == prefix + "val_interval"
    assert HyperParams(learning_rate=float("nan")).validate()[0].field == prefix + "learning_rate"
    assert HyperParams().validate() == []


def test_frozen_stages_on_random_weights_and_bad_class_lists_are_refused() -> None:
    with pytest.raises(ConfigInvalid, match="frozen_stages"):
        build_config("faster_rcnn_r50_fpn", CLASSES, HyperParams(frozen_stages=2))
    with pytest.raises(ConfigInvalid) as err:
        build_config("rtmdet_tiny", ("a", "a", ""), HyperParams())
    assert [v.field for v in err.value.violations] == [
        "training_run.class_names[1]",
        "training_run.class_names[2]",
    ]
    with pytest.raises(ConfigInvalid, match="URL"):
        build_config("rtmdet_tiny", CLASSES, HyperParams(), backbone_checkpoint="https://x/y.pth")


def test_unknown_template_is_config_invalid() -> None:
    with pytest.raises(ConfigInvalid) as err:
        build_config("yolo_v99", CLASSES, HyperParams())
    assert err.value.violations[0].field == "training_run.model_template"
    assert "rtmdet_tiny" in err.value.violations[0].description


def test_struct_round_trip_keeps_the_hash_and_fill_restores_types(tmp_path: Path) -> None:
    resolved = build_config("rtmdet_tiny", CLASSES, HyperParams(epochs=3))
    stored = struct_round_trip(resolved.data)
    assert stored["train_cfg"]["max_epochs"] == 3.0 and isinstance(stored["train_cfg"]["max_epochs"], float)
    assert config_sha256(stored) == resolved.sha256

    prepared = _prepared(tmp_path, CLASSES, with_test=False)
    cfg = fill_dataset(stored, prepared, tmp_path / "work", device="cpu", load_from=None, resume_from=None)
    assert cfg.train_cfg.max_epochs == 3 and isinstance(cfg.train_cfg.max_epochs, int)
    resize = next(t for t in cfg.val_dataloader.dataset.pipeline if t.type == "Resize")
    side = TEMPLATES["rtmdet_tiny"].defaults.image_size
    assert resize.scale == (side, side)
    assert cfg.train_dataloader.dataset.metainfo.classes == CLASSES
    for split, ann in (("train", prepared.train_ann), ("val", prepared.val_ann), ("test", prepared.val_ann)):
        ds = cfg[f"{split}_dataloader"].dataset
        assert (ds.data_root, ds.ann_file, ds.data_prefix) == (str(tmp_path), str(ann), {"img": ""})
        if split != "train":
            assert cfg[f"{split}_evaluator"].ann_file == str(ann)
        assert cfg[f"{split}_dataloader"].num_workers == 0
        assert cfg[f"{split}_dataloader"].persistent_workers is False
    assert cfg.work_dir == str(tmp_path / "work")
    resumed = fill_dataset(
        stored, prepared, tmp_path, device="cpu", load_from=None, resume_from=tmp_path / "e1.pth"
    )
    assert resumed.resume is True and resumed.load_from == str(tmp_path / "e1.pth")


def test_fill_refuses_a_dataset_with_other_classes(tmp_path: Path) -> None:
    resolved = build_config("rtmdet_tiny", CLASSES, HyperParams(epochs=2))
    with pytest.raises(ConfigInvalid, match="missing in dataset: \\['tire'\\]"):
        fill_dataset(
            resolved.data,
            _prepared(tmp_path, ("bottle", "bag")),
            tmp_path,
            device="cpu",
            load_from=None,
            resume_from=None,
        )
    # Without a class list at Create the dataset's categories are used.
    open_ended = build_config("rtmdet_tiny", (), HyperParams(epochs=2))
    cfg = fill_dataset(
        open_ended.data,
        _prepared(tmp_path, ("x", "y")),
        tmp_path,
        device="cpu",
        load_from=None,
        resume_from=None,
    )
    assert cfg.model.bbox_head.num_classes == 2


def test_builder_imports_neither_torch_nor_mmcv() -> None:
    code = (
        "import sys, common.mmdet_config as m; m.build_config('rtmdet_tiny', ['a'], m.HyperParams());"
        "print(sorted({'torch', 'mmcv', 'mmdet'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "[]"


def _prepared(root: Path, classes: tuple[str, ...], with_test: bool = True) -> Prepared:
    return Prepared(
        root, root / "train.json", root / "val.json", root / "test.json" if with_test else None, classes
    )


def _walk(node: object) -> list[dict]:
    if isinstance(node, dict):
        return [node] + [d for v in node.values() for d in _walk(v)]
    if isinstance(node, list):
        return [d for v in node for d in _walk(v)]
    return []


def test_builds_share_no_state() -> None:
    first = build_config("rtmdet_tiny", CLASSES, HyperParams(epochs=4, image_size=320))
    build_config("rtmdet_tiny", ("x",), HyperParams(epochs=9, image_size=128, batch_size=2))
    again = build_config("rtmdet_tiny", CLASSES, HyperParams(epochs=4, image_size=320))
    assert again.data == first.data and again.sha256 == first.sha256


def test_unset_fields_take_template_defaults_and_a_set_zero_is_honoured() -> None:
    message = types_pb2.Hyperparameters(batch_size=4, frozen_stages=0, seed=0)
    asked = validate_request(
        hyperparameters_from_proto(message), TEMPLATES["faster_rcnn_r50_fpn"], pretrained=True
    )
    assert asked.violations == [] and asked.training == HyperParams(batch_size=4, frozen_stages=0, seed=0)
    data = build_config(
        "faster_rcnn_r50_fpn", CLASSES, asked.training, backbone_checkpoint="weights/r50.pth"
    ).data
    assert data["model"]["backbone"]["frozen_stages"] == 0 and data["randomness"]["seed"] == 0
    default = build_config(
        "faster_rcnn_r50_fpn", CLASSES, HyperParams(), backbone_checkpoint="weights/r50.pth"
    )
    assert (
        default.data["model"]["backbone"]["frozen_stages"]
        == TEMPLATES["faster_rcnn_r50_fpn"].defaults.frozen_stages
    )
    assert default.data["train_cfg"]["max_epochs"] == TEMPLATES["faster_rcnn_r50_fpn"].defaults.epochs
