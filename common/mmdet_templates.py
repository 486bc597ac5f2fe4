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
        self,
        template: ModelTemplate | None = None,
        *,
        prefix: str = "training_run.hyperparameters",
        pretrained: bool = True,
    ) -> list[FieldViolation]:
        """Checks against ``limits_for(template, pretrained)``; a template's defaults fill the gaps first.

        ``pretrained``: the backbone starts from trained weights (a base model or a backbone checkpoint).
        """
        hp = self.resolved_with(template.defaults_for(pretrained)) if template else self
        out: list[FieldViolation] = []

        def bad(name: str, description: str) -> None:
            out.append(FieldViolation(f"{prefix}.{name}" if prefix else name, description))

        for limit in limits_for(template, pretrained=pretrained):
            problem = limit.problem(getattr(hp, limit.field, None))
            if problem:
                bad(limit.field, problem)
        explicit = self.val_interval is not None  # a default interval is clamped to the epochs instead
        if (
            explicit
            and isinstance(hp.epochs, int)
            and isinstance(hp.val_interval, int)
            and hp.val_interval > hp.epochs
        ):
            bad("val_interval", f"must be at most epochs ({hp.epochs}), got {hp.val_interval}")
        return out


@dataclass(frozen=True)
class Limit:
    """Valid values of one hyperparameter: the one source of Create's checks and of the template listing."""

    field: str
    low: float
    high: float
    integer: bool = True
    low_exclusive: bool = False
    high_exclusive: bool = False
    multiple_of: int = 0
    note: str = ""

    def describe(self) -> str:
        if self.integer and not (self.low_exclusive or self.high_exclusive):
            return f"between {int(self.low)} and {int(self.high)}"
        opening, closing = "(" if self.low_exclusive else "[", ")" if self.high_exclusive else "]"
        return f"in {opening}{self.low:g}, {self.high:g}{closing}"

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value`` (None and in-range values are fine), in words a person can act on."""
        if value is None:
            return None
        kind = "an integer" if self.integer else "a number"
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or (self.integer and not isinstance(value, int)):
            return f"must be {kind}, got {value!r}"
        assert isinstance(value, int | float)
        too_low = value <= self.low if self.low_exclusive else value < self.low
        too_high = value >= self.high if self.high_exclusive else value > self.high
        if value != value or too_low or too_high:
            return f"must be {'' if self.integer else 'a number '}{self.describe()}, got {value}"
        if self.multiple_of and int(value) % self.multiple_of:
            return f"must be a multiple of {self.multiple_of} ({self.note}), got {value}"
        return None


_FROZEN_STAGES = Limit("frozen_stages", -1, 4, note="backbone stages kept frozen; -1 = none")
HYPERPARAMETER_LIMITS: tuple[Limit, ...] = (
    Limit("epochs", 1, 500),
    Limit("batch_size", 1, 64),
    Limit("learning_rate", 0, 1, integer=False, low_exclusive=True),
    _FROZEN_STAGES,
    Limit("image_size", 64, 2048, multiple_of=IMAGE_SIZE_MULTIPLE, note="the largest feature stride"),
    Limit("seed", 0, MAX_SEED),
    Limit("val_interval", 1, 500, note="at most epochs"),
)
# Limits of the run itself (not of the MMDetection config); zero in a request means the default below.
RUN_LIMITS: tuple[Limit, ...] = (
    Limit("max_attempts", 1, 10, note="worker-loss retries included"),
    Limit("train_fraction", 0, 1, integer=False, low_exclusive=True, high_exclusive=True,
          note="used when the dataset carries no split"),
    Limit("val_fraction", 0, 1, integer=False, low_exclusive=True, high_exclusive=True,
          note="train_fraction + val_fraction <= 1"),
)  # fmt: skip
RUN_DEFAULTS: dict[str, int | float] = {"max_attempts": 3, "train_fraction": 0.7, "val_fraction": 0.2}


def limits_for(template: ModelTemplate | None, *, pretrained: bool = True) -> tuple[Limit, ...]:
    """The limits a run of ``template`` is checked against: its backbone bounds frozen_stages, and random
    backbone weights (no base model, no backbone checkpoint) can't be frozen at all."""
    if template is None:
        return HYPERPARAMETER_LIMITS
    frozen = dataclasses.replace(
        _FROZEN_STAGES,
        high=template.max_frozen_stages if pretrained else -1,
        note=_FROZEN_STAGES.note
        if pretrained
        else f"{_FROZEN_STAGES.note}; up to {template.max_frozen_stages} when fine-tuning a base model",
    )
    return tuple(frozen if limit.field == "frozen_stages" else limit for limit in HYPERPARAMETER_LIMITS)


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

    mixed_precision: bool = False
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

    def defaults_for(self, pretrained: bool) -> HyperParams:
        """The defaults a run gets: from random backbone weights nothing is frozen."""
        if pretrained:
            return self.defaults
        return dataclasses.replace(self.defaults, frozen_stages=-1)


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
        ),
    )
}
