"""MMDetection training configs built as data.

``build_config`` (training_run, at Create) loads a template config shipped inside the mmdet package, or the
stored config of a base model, and applies the class list and hyperparameters with dict edits on an
``mmengine.Config``: user input is only ever stored as values, never formatted into Python source.
:mod:`common.mmdet_fill` (worker) adds the prepared dataset's paths, the work dir and local checkpoints.
Every config passes :mod:`common.config_gate` (a base model's stored config, and the result).

``ResolvedConfig.data`` is the canonical JSON form of :mod:`common.config_data`, so it survives the trip
through a ``google.protobuf.Struct`` to the worker with the same ``config_sha256``.

Importing this module imports mmengine's config machinery only (no torch, mmcv or mmdet).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmengine.config import Config

from common.config_data import (
    NotPlainData,
    canonical,
    config_sha256,
    find_urls,
    leaf_datasets,
    restore_types,
    walk_dicts,
)
from common.config_gate import ConfigRefused, check_config
from common.errors import FieldViolation
from common.hyperparameters import HyperParams
from common.mmdet_templates import TEMPLATES, ModelTemplate, validate_class_names
from common.precision import apply_lr_scaling, apply_precision
from common.tiling import META_KEY as SLICED_INFERENCE
from common.tiling import from_flat as tiling_from_flat
from common.tiling import tiled_training

__all__ = [
    "TEMPLATES",
    "ConfigInvalid",
    "FieldViolation",
    "HyperParams",
    "ModelTemplate",
    "ResolvedConfig",
    "build_config",
    "config_sha256",
    "find_urls",
    "restore_types",
]

META_KEY = "raven"  # our provenance block inside the config; mmengine's Runner ignores unknown keys
_RUNNER_KEYS = tuple(
    "model train_dataloader val_dataloader test_dataloader train_cfg val_cfg test_cfg auto_scale_lr"
    " optim_wrapper param_scheduler val_evaluator test_evaluator default_hooks custom_hooks load_from"
    " resume env_cfg log_processor log_level visualizer default_scope randomness".split()
)
SPLITS = ("train", "val", "test")


class ConfigInvalid(Exception):
    """The config cannot be resolved; ``violations`` say which request fields to fix."""

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))


@dataclass(frozen=True)
class ResolvedConfig:
    """A resolved config: ``data`` is plain JSON data, ``text`` the same config as mmengine prints it."""

    data: dict[str, Any]
    text: str
    sha256: str
    template: str
    hyperparams: HyperParams = field(default_factory=HyperParams)


def build_config(
    template: str,
    class_names: Sequence[str],
    hp: HyperParams,
    *,
    base_model_config: dict[str, Any] | None = None,
    load_from: str | None = None,
    backbone_checkpoint: str | None = None,
) -> ResolvedConfig:
    """Resolves a template (or a base model's stored config) with the run's classes and hyperparameters.

    Args:
        template: catalogue key; gives defaults and limits (for fine-tuning: the base model's template).
        class_names: label order of the model; empty means "the prepared dataset's categories" (set at fill).
        hp: hyperparameters; ``None`` fields take the template defaults.
        base_model_config: stored config data of the base model to fine-tune; requires ``load_from``.
        load_from: artifact key of the base model checkpoint (the worker passes the local path at fill).
        backbone_checkpoint: artifact key of backbone weights; without it (and without a base model) the
            backbone starts from random init.

    Raises:
        ConfigInvalid: unknown template, out-of-range hyperparameters, bad class names or references.
    """
    tpl = TEMPLATES.get(template)
    if tpl is None:
        known = ", ".join(sorted(TEMPLATES))
        raise ConfigInvalid(
            [FieldViolation("training_run.model_template", f"unknown {template!r}; one of: {known}")]
        )
    fine_tune = base_model_config is not None
    pretrained = fine_tune or bool(backbone_checkpoint)
    violations = hp.validate(tpl, pretrained=pretrained) + validate_class_names(class_names)
    violations += _validate_references(fine_tune, load_from, backbone_checkpoint)
    if violations:
        raise ConfigInvalid(violations)
    resolved = hp.resolved_with(tpl.defaults_for(pretrained))

    if base_model_config is not None:
        gate(base_model_config, "training_run.base_model", "its stored config fails the config gate: ")
    cfg = _load_starting_point(tpl, base_model_config)
    _set_init_weights(cfg["model"], tpl, backbone_checkpoint if not fine_tune else None)
    set_classes(cfg, list(class_names))
    _set_schedule(cfg, tpl, resolved)
    _set_data(cfg, tpl, resolved)
    _set_runtime(cfg, resolved)
    cfg["load_from"] = load_from if fine_tune else None
    cfg["resume"] = False
    cfg[META_KEY] = {
        "template": tpl.name,
        "mmdet_config": tpl.mmdet_config,
        "class_names": list(class_names),
        "hyperparams": resolved.as_dict(),
        "backbone_checkpoint": backbone_checkpoint if not fine_tune else None,
        "fine_tune": fine_tune,
    }
    tiling = tiling_from_flat(resolved.as_dict())
    if tiling is not None:  # how to predict like the run's evaluation: on tiles of the full image, merged
        cfg[META_KEY][SLICED_INFERENCE] = tiling.inference()
        tiled_training(cfg)
    try:
        data = canonical(cfg)
    except NotPlainData as exc:  # a base model config holding Python objects (lazy-import style configs)
        raise ConfigInvalid([FieldViolation("training_run.base_model", f"stored config {exc}")]) from exc
    gate(data, "training_run.model_template", "the resolved config fails the config gate: ")
    urls = find_urls({k: data.get(k) for k in ("model", "load_from")})
    if urls:  # a template we did not rewrite completely: fail here, never download at run time
        raise ConfigInvalid(
            [FieldViolation("training_run.model_template", f"config still points at {urls[0]}")]
        )
    return ResolvedConfig(data, _pretty_text(data), config_sha256(data), tpl.name, resolved)


def mmdet_config_dir() -> Path:
    """``mmdet/.mim/configs`` of the installed mmdet, located without importing mmdet (which needs mmcv)."""
    spec = importlib.util.find_spec("mmdet")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("mmdet is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / ".mim" / "configs"


def _validate_references(
    fine_tune: bool, load_from: str | None, backbone: str | None
) -> list[FieldViolation]:
    out = []
    if fine_tune and not load_from:
        out.append(
            FieldViolation("training_run.base_model", "the base model has no checkpoint to fine-tune from")
        )
    if load_from and not fine_tune:
        out.append(
            FieldViolation("training_run.base_model", "a checkpoint was given without the base model config")
        )
    for name, ref in (("training_run.base_model", load_from), ("backbone_checkpoint", backbone)):
        if ref and find_urls(ref):
            out.append(FieldViolation(name, f"must be an artifact key, not a URL: {ref!r}"))
    return out


def gate(data: dict[str, Any], field: str, prefix: str) -> None:
    """The config gate, reported as ConfigInvalid on ``field``."""
    try:
        check_config(data)
    except ConfigRefused as exc:
        raise ConfigInvalid([FieldViolation(field, f"{prefix}{exc}")]) from exc


# --- building ---


def _load_starting_point(tpl: ModelTemplate, base_model_config: dict[str, Any] | None) -> dict[str, Any]:
    if base_model_config is not None:
        if not isinstance(base_model_config.get("model"), dict):
            raise ConfigInvalid([FieldViolation("training_run.base_model", "its stored config has no model")])
        source = restore_types(copy.deepcopy(base_model_config))
    else:
        source = _template_source(tpl.mmdet_config)
    return {k: copy.deepcopy(source[k]) for k in _RUNNER_KEYS if k in source}


@functools.lru_cache(maxsize=16)
def _template_source(relative_path: str) -> dict[str, Any]:
    """The parsed mmdet config file (callers deep-copy what they change): parsing its _base_ chain is slow."""
    path = str(mmdet_config_dir() / relative_path)
    return Config.fromfile(path, use_predefined_variables=False, use_environment_variables=False).to_dict()


def _set_init_weights(model: dict[str, Any], tpl: ModelTemplate, backbone_key: str | None) -> None:
    """Drops every checkpoint-backed init_cfg; the backbone gets the backbone artifact or random init."""
    for node in walk_dicts(model):
        init = node.get("init_cfg")
        inits = init if isinstance(init, list) else [init]
        if any(isinstance(i, dict) and ("checkpoint" in i or i.get("type") == "Pretrained") for i in inits):
            node["init_cfg"] = None
    backbone = model.get("backbone", {})
    if backbone_key:
        backbone["init_cfg"] = {"type": "Pretrained", "checkpoint": backbone_key}
        if tpl.backbone_prefix:
            backbone["init_cfg"]["prefix"] = tpl.backbone_prefix
    elif "norm_eval" in backbone:
        backbone["norm_eval"] = False  # random init: BN statistics must be learnt, not frozen


def set_classes(cfg: dict[str, Any], names: list[str]) -> None:
    if not names:
        return
    # The RPN of two-stage detectors is class-agnostic: its num_classes stays 1.
    for node in walk_dicts(cfg["model"], skip=frozenset({"rpn_head"})):
        if "num_classes" in node:
            node["num_classes"] = len(names)
    for split in SPLITS:
        loader = cfg.get(f"{split}_dataloader")
        if loader:
            for ds in leaf_datasets(loader["dataset"]):
                ds["metainfo"] = {"classes": tuple(names)}


def _set_schedule(cfg: dict[str, Any], tpl: ModelTemplate, hp: HyperParams) -> None:
    assert hp.epochs is not None and hp.learning_rate is not None, "resolved with the template defaults"
    epochs, lr = hp.epochs, float(hp.learning_rate)
    cfg["train_cfg"] = {"type": "EpochBasedTrainLoop", "max_epochs": epochs, "val_interval": hp.val_interval}
    cfg["optim_wrapper"]["optimizer"]["lr"] = lr
    # the rate given is the template's base batch size's; MMEngine scales it to the run's (common.precision)
    apply_lr_scaling(cfg, hp.auto_scale_lr is not False, tpl.defaults.batch_size or hp.batch_size or 1)
    apply_precision(cfg, hp.precision)
    schedulers: list[dict[str, Any]] = []
    if tpl.warmup_epochs and epochs >= 4 * tpl.warmup_epochs:  # whole epochs: a fraction can round to 0 iters
        schedulers.append(
            dict(type="LinearLR", start_factor=0.001, by_epoch=True, begin=0, end=tpl.warmup_epochs,
                 convert_to_iter_based=True)
        )  # fmt: skip
    if tpl.schedule == "cosine":
        half = epochs // 2
        schedulers.append(
            dict(type="CosineAnnealingLR", eta_min=lr * 0.05, begin=half, end=epochs,
                 T_max=max(epochs - half, 1), by_epoch=True, convert_to_iter_based=True)
        )  # fmt: skip
    else:
        milestones = sorted({max(1, math.ceil(epochs * 8 / 12)), max(1, math.ceil(epochs * 11 / 12))})
        schedulers.append(
            dict(type="MultiStepLR", begin=0, end=epochs, by_epoch=True, milestones=milestones, gamma=0.1)
        )
    cfg["param_scheduler"] = schedulers
    hooks = []
    for hook in cfg.get("custom_hooks") or []:
        if hook.get("type") == "PipelineSwitchHook":
            if tpl.light_pipeline:
                continue  # the light pipeline has no Mosaic stage to switch away from
            hook["switch_epoch"] = max(1, epochs - max(1, round(epochs * 20 / 300)))
        hooks.append(hook)
    cfg["custom_hooks"] = hooks


def _set_data(cfg: dict[str, Any], tpl: ModelTemplate, hp: HyperParams) -> None:
    assert hp.image_size is not None, "resolved with the template defaults"
    side = hp.image_size
    ref = _reference_side(cfg)
    factor = side / ref if ref else 1.0
    for node in walk_dicts({k: v for k, v in cfg.items() if k != "model"}):
        for key in ("pipeline", "switch_pipeline"):
            for transform in node.get(key) or []:
                _rescale_transform(transform, side, factor)
    cfg["train_dataloader"]["batch_size"] = hp.batch_size
    if tpl.light_pipeline:
        for ds in leaf_datasets(cfg["train_dataloader"]["dataset"]):
            ds["pipeline"] = _light_train_pipeline(side)
    cfg["model"].get("backbone", {})["frozen_stages"] = hp.frozen_stages
    cfg["randomness"] = {"seed": hp.seed, "deterministic": False, "diff_rank_seed": False}


def _reference_side(cfg: dict[str, Any]) -> int | None:
    """Square side of the val pipeline's Resize (640 for RTMDet); None for COCO's non-square (1333, 800)."""
    for ds in leaf_datasets(cfg["val_dataloader"]["dataset"]):
        for t in ds.get("pipeline") or []:
            scale = t.get("scale")
            if t.get("type") == "Resize" and isinstance(scale, tuple | list) and scale[0] == scale[1]:
                return int(scale[0])
    return None


def _rescale_transform(transform: dict[str, Any], side: int, factor: float) -> None:
    for key in ("scale", "img_scale", "crop_size", "size"):
        value = transform.get(key)
        if isinstance(value, tuple | list) and len(value) == 2 and all(isinstance(v, int) for v in value):
            transform[key] = (round(value[0] * factor),) * 2 if value[0] == value[1] else (side, side)


def _light_train_pipeline(side: int) -> list[dict[str, Any]]:
    return [
        {"type": "LoadImageFromFile", "backend_args": None},
        {"type": "LoadAnnotations", "with_bbox": True},
        {"type": "RandomResize", "scale": (side, side), "ratio_range": (0.75, 1.25), "keep_ratio": True},
        {"type": "RandomCrop", "crop_size": (side, side)},
        {"type": "YOLOXHSVRandomAug"},
        {"type": "RandomFlip", "prob": 0.5},
        {"type": "Pad", "size": (side, side), "pad_val": {"img": (114, 114, 114)}},
        {"type": "PackDetInputs"},
    ]


def _set_runtime(cfg: dict[str, Any], hp: HyperParams) -> None:
    hooks = cfg.setdefault("default_hooks", {})
    hooks["checkpoint"] = dict(
        type="CheckpointHook", interval=1, by_epoch=True, save_best="coco/bbox_mAP", rule="greater",
        max_keep_ckpts=2, save_last=True,
    )  # fmt: skip
    hooks["logger"] = {"type": "LoggerHook", "interval": 10}
    # early stopping is the run's choice alone: a base model's stored hook never carries over; patience 0 =
    # off. The worker runs it with a warm-up (trainer_worker/adapters/early_stopping.py).
    custom = [h for h in cfg.get("custom_hooks") or [] if h.get("type") != "EarlyStoppingHook"]
    if hp.early_stopping_patience:
        custom.append(
            dict(type="EarlyStoppingHook", monitor="coco/bbox_mAP", rule="greater",
                 patience=int(hp.early_stopping_patience),
                 min_delta=float(hp.early_stopping_min_delta or 0.0))
        )  # fmt: skip
    cfg["custom_hooks"] = custom
    cfg["log_processor"] = {"type": "LogProcessor", "window_size": 10, "by_epoch": True}
    cfg["log_level"] = "INFO"
    visualizer = cfg.get("visualizer")
    if visualizer:  # only backends that write locally; wandb/tensorboard/mlflow would need network or extras
        visualizer["vis_backends"] = [{"type": "LocalVisBackend"}]
    env = cfg.setdefault("env_cfg", {})
    env["cudnn_benchmark"] = False
    env.setdefault("mp_cfg", {}).update(mp_start_method="fork", opencv_num_threads=0)
    env["dist_cfg"] = {"backend": "nccl"}


def _pretty_text(data: dict[str, Any]) -> str:
    try:
        return Config(restore_types(data)).pretty_text
    except Exception:  # yapf can choke on unusual strings; JSON always works and is just as readable
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
