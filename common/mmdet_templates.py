"""Catalogue of MMDetection model templates and the hyperparameters a training run may set.

Pure data and validation: no torch, mmcv or mmdet import. The templates point at configs shipped inside the
mmdet package (``mmdet/.mim/configs``); :mod:`common.mmdet_config` loads and rewrites them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from common.errors import FieldViolation

MAX_SEED = 2**31 - 1
MAX_CLASSES = 1000
MAX_CLASS_NAME_CHARS = 200
IMAGE_SIZE_MULTIPLE = 32


@dataclass(frozen=True)
class HyperParams:
    """Hyperparameters of a run. ``None`` means "the template default" (see :meth:`resolved_with`)."""

    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    frozen_stages: int | None = None
    image_size: int | None = None
    seed: int | None = None
    val_interval: int | None = None

    @classmethod
    def from_proto_fields(cls, **values: float | int) -> HyperParams:
        """Builds from proto3 ``Hyperparameters`` fields where zero means "template default".

        ``frozen_stages`` and ``seed`` can't say "0" through proto3 zero-defaults: 0 maps to the default too.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (v if v else None) for k, v in values.items() if k in names})  # type: ignore[arg-type]

    def resolved_with(self, defaults: HyperParams) -> HyperParams:
        """Every ``None`` replaced by the value in ``defaults``; a default val_interval is kept <= epochs."""
        values = {
            f.name: getattr(defaults, f.name) if getattr(self, f.name) is None else getattr(self, f.name)
            for f in dataclasses.fields(self)
        }
        if self.val_interval is None and isinstance(values["epochs"], int) and values["val_interval"]:
            values["val_interval"] = max(1, min(values["val_interval"], values["epochs"]))
        return HyperParams(**values)

    def as_dict(self) -> dict[str, int | float | None]:
        return dataclasses.asdict(self)

    def validate(
        self, template: ModelTemplate | None = None, *, prefix: str = "training_run.hyperparameters"
    ) -> list[FieldViolation]:
        """Range checks; with a template also its limits, and its defaults for ``val_interval <= epochs``."""
        hp = self.resolved_with(template.defaults) if template else self
        max_frozen = template.max_frozen_stages if template else 4
        out: list[FieldViolation] = []

        def bad(name: str, description: str) -> None:
            out.append(FieldViolation(f"{prefix}.{name}" if prefix else name, description))

        _check_int(hp.epochs, "epochs", 1, 500, bad)
        _check_int(hp.batch_size, "batch_size", 1, 64, bad)
        _check_int(hp.frozen_stages, "frozen_stages", -1, max_frozen, bad)
        _check_int(hp.image_size, "image_size", 64, 2048, bad)
        _check_int(hp.seed, "seed", 0, MAX_SEED, bad)
        _check_int(hp.val_interval, "val_interval", 1, 500, bad)
        if isinstance(hp.image_size, int) and hp.image_size % IMAGE_SIZE_MULTIPLE:
            bad("image_size", f"must be a multiple of {IMAGE_SIZE_MULTIPLE} (the largest feature stride)")
        lr = hp.learning_rate
        if lr is not None and (
            isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr <= 1 or lr != lr
        ):
            bad("learning_rate", f"must be a number in (0, 1], got {lr!r}")
        explicit = self.val_interval is not None  # a default interval is clamped to the epochs instead
        if (
            explicit
            and isinstance(hp.epochs, int)
            and isinstance(hp.val_interval, int)
            and hp.val_interval > hp.epochs
        ):
            bad("val_interval", f"must be at most epochs ({hp.epochs}), got {hp.val_interval}")
        return out


def _check_int(value: object, name: str, low: int, high: int, bad) -> None:  # type: ignore[no-untyped-def]
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        bad(name, f"must be an integer, got {value!r}")
    elif not low <= value <= high:
        bad(name, f"must be between {low} and {high}, got {value}")


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


TEMPLATES: dict[str, ModelTemplate] = {
    t.name: t
    for t in (
        ModelTemplate(
            name="faster_rcnn_r50_fpn",
            mmdet_config="faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py",
            description="Faster R-CNN, ResNet-50 FPN (two-stage, accurate, GPU)",
            defaults=HyperParams(12, 2, 0.0025, 1, 800, 0, 1),
        ),
        ModelTemplate(
            name="retinanet_r50_fpn",
            mmdet_config="retinanet/retinanet_r50_fpn_1x_coco.py",
            description="RetinaNet, ResNet-50 FPN (one-stage, GPU)",
            defaults=HyperParams(12, 2, 0.00125, 1, 800, 0, 1),
        ),
        ModelTemplate(
            name="retinanet_r18_fpn",
            mmdet_config="retinanet/retinanet_r18_fpn_1x_coco.py",
            description="RetinaNet, ResNet-18 FPN (one-stage, small)",
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
            defaults=HyperParams(30, 4, 0.004, -1, 160, 0, 5),
            schedule="cosine",
            warmup_epochs=1,
            light_pipeline=True,
            backbone_prefix="backbone.",
        ),
    )
}
