"""The hyperparameters a training run may set: one field list, their limits, defaults and validation.

Create (:mod:`services.training_run.service_layer.validation`), the config builder
(:mod:`common.mmdet_config`), the proto mapping, the template listing and ``ravenctl runs create`` read it.

A request names only the fields it sets (``raven.v1.Hyperparameters`` fields are proto3 ``optional``): an
unset field takes the default (the template's for training fields, :data:`RUN_DEFAULTS` for the run's own),
a set field is used as given, zero included (``seed=0``, ``frozen_stages=0``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from common.errors import FieldViolation
from common.precision import precision_problem


class ModelTemplate(Protocol):
    """What the rules here need of a template (common.mmdet_templates.ModelTemplate), without importing it."""

    @property
    def max_frozen_stages(self) -> int: ...

    @property
    def small_dataset_early_stopping(self) -> SmallDatasetEarlyStopping | None: ...

    def defaults_for(self, pretrained: bool) -> HyperParams: ...


MAX_SEED = 2**31 - 1
MAX_GPUS = 8  # GPUs one run trains on (one worker's GPUs); the job queues per size (common.nats_streams)
IMAGE_SIZE_MULTIPLE = 32
PREFIX = "training_run.hyperparameters"


@dataclass(frozen=True)
class HyperParams:
    """Training hyperparameters. ``None`` means "the template default" (see :meth:`resolved_with`)."""

    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    frozen_stages: int | None = None
    image_size: int | None = None
    seed: int | None = None
    val_interval: int | None = None
    precision: int | None = None  # raven.v1.Precision number; None/0 = FP32 (common.precision)
    auto_scale_lr: bool | None = None  # None = on (common.precision)
    # Early stopping on val bbox mAP: off while patience is None or 0 (0: the request turned it off)
    early_stopping_patience: int | None = None
    early_stopping_min_delta: float | None = None
    # Tiling (``common.tiling``): off while tile_size is None; set together, defaults filled in
    tiling_tile_size: int | None = None
    tiling_overlap: int | None = None
    tiling_min_box_visibility: float | None = None

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
        self, template: ModelTemplate | None = None, *, prefix: str = PREFIX, pretrained: bool = True
    ) -> list[FieldViolation]:
        """Checks against ``limits_for(template, pretrained)``; a template's defaults fill the gaps first.

        ``pretrained``: the backbone starts from trained weights (a base model or a backbone checkpoint).
        """
        hp = self.resolved_with(template.defaults_for(pretrained)) if template else self
        out: list[FieldViolation] = []

        def bad(name: str, description: str) -> None:
            out.append(FieldViolation(f"{prefix}.{name}" if prefix else name, description))

        freezes_random = not pretrained and isinstance(self.frozen_stages, int) and self.frozen_stages >= 0
        if template and freezes_random:
            bad(
                "frozen_stages",
                "would freeze random backbone weights; leave it unset or fine-tune a base model",
            )
        for limit in limits_for(template, pretrained=pretrained):
            problem = limit.problem(getattr(hp, limit.field, None))
            if problem and not (limit.field == "frozen_stages" and template and freezes_random):
                bad(limit.field, problem)
        precision = precision_problem(self.precision)
        if precision:
            bad("precision", precision)
        for limit in EARLY_STOPPING_LIMITS:
            problem = limit.problem(getattr(hp, f"early_stopping_{limit.field}"))
            if problem:
                bad(f"early_stopping.{limit.field}", problem)
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
# Limits of the run itself (not of the MMDetection config); an unset field takes the default below.
RUN_LIMITS: tuple[Limit, ...] = (
    Limit("max_attempts", 1, 10, note="worker-loss retries included"),
    Limit("train_fraction", 0, 1, integer=False, low_exclusive=True, high_exclusive=True,
          note="used when the dataset carries no split"),
    Limit("val_fraction", 0, 1, integer=False, low_exclusive=True, high_exclusive=True,
          note="train_fraction + val_fraction <= 1"),
    Limit("gpus", 1, MAX_GPUS, note="one torch.distributed rank per GPU; batch_size is per GPU"),
)  # fmt: skip
RUN_DEFAULTS: dict[str, int | float] = {
    "max_attempts": 3, "train_fraction": 0.7, "val_fraction": 0.2, "gpus": 1,
}  # fmt: skip
# ``early_stopping { patience, min_delta }``: set, its unset fields take these defaults (noisy val mAP: 3
# validations without a 0.001 gain stop the run); ``patience`` 0 turns it off. Unset, a small dataset gets
# its template's default (:func:`small_dataset_default`), any other trains its epochs.
EARLY_STOPPING_LIMITS: tuple[Limit, ...] = (
    Limit("patience", 0, 100, note="validations without improvement; 0 = off"),
    Limit("min_delta", 0, 1, integer=False, note="val bbox mAP gain that counts as an improvement"),
)
EARLY_STOPPING_DEFAULTS: dict[str, int | float] = {"patience": 3, "min_delta": 0.001}
# A run whose dataset has fewer train images than this is on a "small dataset", where an unset early_stopping
# takes the template's default: a chosen threshold (not a measured one): a detector overfits a few hundred
# drone images well within a template's epochs, while a larger dataset is left to train what it asks for.
SMALL_DATASET_TRAIN_IMAGES = 1000

_NESTED = ("early_stopping_", "tiling_")  # fields of a message in the proto, flat here
TRAINING_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(HyperParams) if not f.name.startswith(_NESTED)
)
RUN_FIELDS: tuple[str, ...] = tuple(limit.field for limit in RUN_LIMITS)
# The one field list: ``raven.v1.Hyperparameters`` has exactly these fields (a unit test holds them equal);
# ``early_stopping`` and ``tiling`` are messages there, the ``early_stopping_*``/``tiling_*`` fields here and
# in the stored run.
FIELDS: tuple[str, ...] = TRAINING_FIELDS + RUN_FIELDS + ("early_stopping", "tiling")


def early_stopping_fields(asked: object) -> dict[str, int | float]:
    """``early_stopping`` as the request set it (a mapping of its set fields; ``None`` = unset) → the flat
    ``early_stopping_*`` pair with the defaults filled in; ``{}`` when unset; ``patience`` 0 (off, asked
    explicitly) is kept as ``{"early_stopping_patience": 0}`` so the stored run shows it."""
    if asked is None:
        return {}
    given = asked if isinstance(asked, Mapping) else {}
    if given.get("patience") == 0:
        return {"early_stopping_patience": 0}
    return {f"early_stopping_{k}": given.get(k, v) for k, v in EARLY_STOPPING_DEFAULTS.items()}


@dataclass(frozen=True)
class SmallDatasetEarlyStopping:
    """A template's early stopping for runs on small datasets that leave ``early_stopping`` unset.

    ``patience_epochs`` is in epochs, so it means the same whatever the run's ``val_interval``: the run's
    patience is that many epochs' worth of validations (at least 1).
    """

    patience_epochs: int
    min_delta: float = 0.001

    def for_run(self, epochs: int, val_interval: int) -> dict[str, int | float]:
        """The run's ``early_stopping_*`` pair; ``{}`` for a run too short for it to stop before its last
        epoch (the first validation sets the best, ``patience`` more stop training)."""
        patience = max(1, -(-self.patience_epochs // max(val_interval, 1)))  # ceil
        if epochs // max(val_interval, 1) <= patience + 1:
            return {}
        return {"early_stopping_patience": patience, "early_stopping_min_delta": self.min_delta}


def small_dataset_default(
    values: Mapping[str, Any], template: ModelTemplate | None, *, pretrained: bool, train_images: int
) -> dict[str, int | float]:
    """The flat ``early_stopping_*`` pair a run gets without asking for it: its template's small-dataset
    default when the request leaves ``early_stopping`` and ``tiling`` unset and the dataset has fewer than
    SMALL_DATASET_TRAIN_IMAGES train images (``train_images`` 0 = unknown: no default) and validates more
    often than the patience; else ``{}``."""
    default = template.small_dataset_early_stopping if template else None
    tiling = values.get("tiling")
    tiled = isinstance(tiling, Mapping) and bool(tiling.get("tile_size"))  # early stopping would be refused
    if default is None or template is None or values.get("early_stopping") is not None or tiled:
        return {}
    if not 0 < train_images < SMALL_DATASET_TRAIN_IMAGES:
        return {}
    given = HyperParams(**{k: values[k] for k in TRAINING_FIELDS if k in values})
    hp = given.resolved_with(template.defaults_for(pretrained))
    if not isinstance(hp.epochs, int) or not isinstance(hp.val_interval, int):
        return {}  # a bad value, refused with the others
    return default.for_run(hp.epochs, hp.val_interval)


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


@dataclass(frozen=True)
class Requested:
    """What a request asked for: training hyperparameters (``None`` = template default) and the run's own
    settings with their defaults filled in."""

    training: HyperParams
    run: dict[str, int | float]
    violations: list[FieldViolation]


def validate_request(
    values: Mapping[str, Any],
    template: ModelTemplate | None,
    *,
    pretrained: bool,
    prefix: str = PREFIX,
    largest_image_side: int = 0,
    train_images: int = 0,
) -> Requested:
    """Reads and checks the fields a request set (absent keys take the defaults); unknown keys are ignored.

    Args:
        values: the set fields only (a proto message's ``ListFields()``), zero values included.
        template: the run's template (its defaults and frozen-stage bound); ``None`` when unknown.
        pretrained: the backbone starts from trained weights (a base model or a backbone checkpoint).
        largest_image_side: the dataset's largest image side when known (bounds ``tiling.tile_size``).
        train_images: the dataset's train images when known, else 0: below SMALL_DATASET_TRAIN_IMAGES an
            unset ``early_stopping`` takes the template's default (:func:`small_dataset_default`).
    """
    from common.tiling import validate_tiling  # it builds on Limit, defined here

    given = {k: values[k] for k in TRAINING_FIELDS if k in values}
    stopping: dict[str, Any] = early_stopping_fields(values.get("early_stopping")) or small_dataset_default(
        values, template, pretrained=pretrained, train_images=train_images
    )
    tiling, tiling_violations = validate_tiling(
        values.get("tiling"), prefix=prefix, largest_image_side=largest_image_side,
        early_stopping=bool(stopping.get("early_stopping_patience")),
    )  # fmt: skip
    training = HyperParams(**given, **stopping, **dict[str, Any](tiling))  # its fields are not all numbers
    violations = training.validate(template, prefix=prefix, pretrained=pretrained) + tiling_violations
    run: dict[str, int | float] = {}
    for limit in RUN_LIMITS:
        value = values.get(limit.field, RUN_DEFAULTS[limit.field])
        run[limit.field] = int(value) if limit.integer else float(value)
        problem = limit.problem(run[limit.field])
        if problem:
            violations.append(FieldViolation(f"{prefix}.{limit.field}", problem))
    total = run["train_fraction"] + run["val_fraction"]
    if total > 1 + 1e-9:
        violations.append(
            FieldViolation(
                f"{prefix}.val_fraction", f"train_fraction + val_fraction must be <= 1, got {total:g}"
            )
        )
    return Requested(training, run, violations)
