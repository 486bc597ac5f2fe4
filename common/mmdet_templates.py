"""Catalogue of MMDetection model templates (the hyperparameters live in :mod:`common.hyperparameters`).

Pure data and validation: no torch, mmcv or mmdet import. The templates point at configs shipped inside the
mmdet package (``mmdet/.mim/configs``); :mod:`common.mmdet_config` loads and rewrites them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from common.errors import FieldViolation
from common.hyperparameters import HyperParams, SmallDatasetEarlyStopping
from common.precision import FP32

MAX_CLASSES = 1000
# 5 epochs without a 0.001 gain: 5 validations at the GPU templates' val_interval 1 (12 epochs, step)
GPU_TEMPLATE_EARLY_STOPPING = SmallDatasetEarlyStopping(5)
MAX_CLASS_NAME_CHARS = 200


def validate_class_names(
    names: Sequence[str], *, field: str = "training_run.class_names"
) -> list[FieldViolation]:
    """Class names are free text (kept as data); only emptiness, length and duplicates are refused."""
    out: list[FieldViolation] = []
    if isinstance(names, str):
        return [FieldViolation(field, "must be a list of names, got one string")]
    if len(names) > MAX_CLASSES:
        out.append(FieldViolation(field, f"at most {MAX_CLASSES} classes, got {len(names)}"))
    seen: set[str] = set()
    for i, name in enumerate(names):
        path = f"{field}[{i}]"
        if not isinstance(name, str) or not name.strip():
            out.append(FieldViolation(path, "must be a non-empty string"))
        elif len(name) > MAX_CLASS_NAME_CHARS:
            out.append(FieldViolation(path, f"at most {MAX_CLASS_NAME_CHARS} characters"))
        elif name in seen:
            out.append(FieldViolation(path, f"duplicate class name {name!r}"))
        else:
            seen.add(name)
    return out


@dataclass(frozen=True)
class TemplateOptions:
    """Features a template supports; each turns true when the suite implements it for that template."""

    mixed_precision: bool = True  # AMP_FP16/AMP_BF16 on CUDA: MMEngine's AmpOptimWrapper (common.precision)
    tiling: bool = False
    multi_gpu: bool = False


@dataclass(frozen=True)
class ModelTemplate:
    """One entry of the catalogue.

    Attributes:
        name: catalogue key used in the API.
        mmdet_config: path relative to ``mmdet/.mim/configs``.
        defaults: hyperparameters used where a run sets none; ``frozen_stages`` assumes pretrained weights
            and is forced to -1 (nothing frozen) when the backbone starts from random init.
        max_frozen_stages: largest ``backbone.frozen_stages`` the backbone supports.
        schedule: ``step`` (x0.1 at 2/3 and 11/12 of training) or ``cosine`` (flat, cosine over the 2nd half).
        warmup_epochs: linear warm-up length in whole epochs (converted to iterations by mmengine); runs
            shorter than 4x this have none.
        light_pipeline: replace the COCO augmentation (Mosaic/MixUp) by a resize/crop/flip pipeline that
            learns small datasets quickly.
        backbone_prefix: prefix of backbone weights in a backbone checkpoint (``Pretrained`` ``prefix``).
        architecture: detector and backbone in words, for people choosing a template.
        gpu_recommended: training it on a CPU worker is impractically slow (runs of it queue for "gpu").
        options: features it supports (mixed precision, tiling, multi-GPU); none yet.
        small_dataset_early_stopping: the early stopping a run on a small dataset (fewer train images than
            ``hyperparameters.SMALL_DATASET_TRAIN_IMAGES``) gets when it leaves ``early_stopping`` unset;
            ``None`` = none.
    """

    name: str
    mmdet_config: str
    description: str
    defaults: HyperParams
    max_frozen_stages: int = 4
    schedule: Literal["step", "cosine"] = "step"
    warmup_epochs: int = 1
    light_pipeline: bool = False
    backbone_prefix: str | None = None
    architecture: str = ""
    gpu_recommended: bool = False
    options: TemplateOptions = TemplateOptions()
    small_dataset_early_stopping: SmallDatasetEarlyStopping | None = GPU_TEMPLATE_EARLY_STOPPING

    def defaults_for(self, pretrained: bool) -> HyperParams:
        """The defaults a run gets: from random backbone weights nothing is frozen; every template trains in
        FP32 with auto_scale_lr on unless the run asks otherwise (common.precision)."""
        defaults = dataclasses.replace(
            self.defaults,
            precision=FP32 if self.defaults.precision is None else self.defaults.precision,
            auto_scale_lr=True if self.defaults.auto_scale_lr is None else self.defaults.auto_scale_lr,
        )
        if pretrained:
            return defaults
        return dataclasses.replace(defaults, frozen_stages=-1)


TEMPLATES: dict[str, ModelTemplate] = {
    t.name: t
    for t in (
        ModelTemplate(
            name="faster_rcnn_r50_fpn",
            mmdet_config="faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py",
            description="Faster R-CNN, ResNet-50 FPN (two-stage, accurate, GPU)",
            architecture="Faster R-CNN (two-stage) / ResNet-50 + FPN",
            gpu_recommended=True,
            defaults=HyperParams(12, 2, 0.0025, 1, 800, 0, 1),
        ),
        ModelTemplate(
            name="retinanet_r50_fpn",
            mmdet_config="retinanet/retinanet_r50_fpn_1x_coco.py",
            description="RetinaNet, ResNet-50 FPN (one-stage, GPU)",
            architecture="RetinaNet (one-stage) / ResNet-50 + FPN",
            gpu_recommended=True,
            defaults=HyperParams(12, 2, 0.00125, 1, 800, 0, 1),
        ),
        ModelTemplate(
            name="retinanet_r18_fpn",
            mmdet_config="retinanet/retinanet_r18_fpn_1x_coco.py",
            description="RetinaNet, ResNet-18 FPN (one-stage, small)",
            architecture="RetinaNet (one-stage) / ResNet-18 + FPN",
            defaults=HyperParams(12, 4, 0.0025, 1, 512, 0, 1),
        ),
        ModelTemplate(
            name="rtmdet_tiny",
            mmdet_config="rtmdet/rtmdet_tiny_8xb32-300e_coco.py",
            # Defaults measured with bench/bench_training.py demo (60 synthetic 256 px images, random init, 2
            # shared CPU cores): batch 4 reached val bbox mAP 0.70 after 25 and 30 epochs on dataset seed 7,
            # where batch 8 (half the optimizer steps) stalled at 0.22; batch 8 did reach 0.73 on seed 0.
            # Raise image_size for real drone imagery, whose objects are far smaller than these.
            description="RTMDet-tiny (light: learns a small dataset on CPU in minutes)",
            architecture="RTMDet (one-stage, anchor-free) / CSPNeXt-tiny + PAFPN",
            defaults=HyperParams(30, 4, 0.004, -1, 160, 0, 5),
            schedule="cosine",
            warmup_epochs=1,
            light_pipeline=True,
            backbone_prefix="backbone.",
            # 15 epochs: 3 validations at its default val_interval 5 (6 validations in its 30 epochs)
            small_dataset_early_stopping=SmallDatasetEarlyStopping(15),
        ),
    )
}
