"""The ``tiling { tile_size, overlap, min_box_visibility }`` run option: its limits, defaults and checks.

Training on tiles: the worker cuts the train split's images into overlapping square tiles of ``tile_size``
pixels (full resolution), keeps the boxes a tile shows at least ``min_box_visibility`` of, and the evaluation
predicts on the same tiles of the full val/test images and merges them (sliced inference). ``tile_size`` 0
(or no ``tiling`` at all) means off. Pure rules, read by :mod:`common.hyperparameters` (Create's checks, the
template listing), the config builder (the inference settings the stored config carries) and the worker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.config_data import leaf_datasets
from common.errors import FieldViolation
from common.hyperparameters import HyperParams, Limit

FIELD = "tiling"
KEYS = ("tile_size", "overlap", "min_box_visibility")
FLAT_PREFIX = "tiling_"  # the stored (flat) hyperparameters: tiling_tile_size, tiling_overlap, ...
MIN_TILE, MAX_TILE = 64, 4096
DEFAULT_OVERLAP_SHARE = 0.2  # an unset overlap: a fifth of the tile (whole pixels)
DEFAULT_MIN_BOX_VISIBILITY = 0.5
META_KEY = (
    "sliced_inference"  # in the config's ``raven`` block: what a consumer needs to predict like the run
)


# Listed by template discovery as ``tiling.<field>``, like the other hyperparameters' ranges.
TILING_LIMITS: tuple[Limit, ...] = (
    Limit("tile_size", MIN_TILE, MAX_TILE, note="square tile side in pixels; 0 = no tiling"),
    Limit("overlap", 0, MAX_TILE - 1, note="pixels shared by neighbouring tiles; less than tile_size"),
    Limit("min_box_visibility", 0, 1, integer=False, low_exclusive=True,
          note="share of a box a tile must show to keep it"),
)  # fmt: skip


@dataclass(frozen=True)
class Tiling:
    """Resolved tiling settings (``tile_size`` > 0)."""

    tile_size: int
    overlap: int
    min_box_visibility: float

    @property
    def stride(self) -> int:
        return self.tile_size - self.overlap

    def as_dict(self) -> dict[str, int | float]:
        return {"tile_size": self.tile_size, "overlap": self.overlap,
                "min_box_visibility": self.min_box_visibility}  # fmt: skip

    def flat(self) -> dict[str, int | float]:
        return {FLAT_PREFIX + k: v for k, v in self.as_dict().items()}

    def applied_to(self, hp: HyperParams) -> HyperParams:
        """``hp`` with this tiling (the flat ``tiling_*`` fields)."""
        return dataclasses.replace(
            hp, tiling_tile_size=self.tile_size, tiling_overlap=self.overlap,
            tiling_min_box_visibility=self.min_box_visibility,
        )  # fmt: skip

    def inference(self) -> dict[str, Any]:
        """What predicting like the run needs: the tiles the evaluation cut the full images into."""
        return {"sliced": True, "tile_size": self.tile_size, "overlap": self.overlap}


def default_overlap(tile_size: int) -> int:
    return int(tile_size * DEFAULT_OVERLAP_SHARE)


def from_flat(values: Mapping[str, Any]) -> Tiling | None:
    """The stored ``tiling_*`` hyperparameters (or a config's ``hyperparams``) → settings; None when off."""
    size = values.get(FLAT_PREFIX + "tile_size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        return None
    overlap = values.get(FLAT_PREFIX + "overlap")
    visibility = values.get(FLAT_PREFIX + "min_box_visibility")
    return Tiling(
        size,
        default_overlap(size) if overlap is None else int(overlap),
        DEFAULT_MIN_BOX_VISIBILITY if visibility is None else float(visibility),
    )


def validate_tiling(
    asked: Mapping[str, Any] | None,
    *,
    prefix: str,
    largest_image_side: int = 0,
    early_stopping: bool = False,
) -> tuple[dict[str, int | float], list[FieldViolation]]:
    """Checks the request's ``tiling`` (a mapping of its set fields; None = not set).

    Returns the flat ``tiling_*`` values to store (empty when off) and the violations, each naming its field.

    Args:
        prefix: the path of the hyperparameters message, e.g. ``training_run.hyperparameters``.
        largest_image_side: the dataset's largest image side when known (a version's profile), else 0.
        early_stopping: the request turns early stopping on (it monitors the full-image validation).
    """
    if not asked:
        return {}, []
    out: list[FieldViolation] = []

    def bad(name: str, description: str) -> None:
        out.append(FieldViolation(f"{prefix}.{FIELD}.{name}", description))

    size = asked.get("tile_size", 0)
    for limit in TILING_LIMITS:
        value = asked.get(limit.field)
        off = limit.field == "tile_size" and not size
        if value is not None and not off and (problem := limit.problem(value)):
            bad(limit.field, problem)
    if not size:
        extra = [k for k in KEYS[1:] if k in asked]
        if extra:
            bad("tile_size", f"is required when {FIELD}.{extra[0]} is set (0 = no tiling)")
        return {}, out
    if out:
        return {}, out
    tiling = Tiling(
        int(size),
        int(asked.get("overlap", default_overlap(int(size)))),
        float(asked.get("min_box_visibility", DEFAULT_MIN_BOX_VISIBILITY)),
    )
    if tiling.overlap >= tiling.tile_size:
        bad("overlap", f"must be less than tile_size ({tiling.tile_size}), got {tiling.overlap}")
    if early_stopping:
        bad(
            "tile_size",
            "tiling and early_stopping do not go together: early stopping watches the validation on full "
            "images at the input size, which does not judge a model trained on tiles; leave one unset",
        )
    if largest_image_side and tiling.tile_size > largest_image_side:
        bad(
            "tile_size",
            f"must be at most the dataset's largest image side ({largest_image_side} px), got "
            f"{tiling.tile_size}: a larger tile cuts nothing; train without tiling or choose a smaller tile",
        )
    return ({} if out else tiling.flat()), out


def tiled_training(cfg: dict[str, Any]) -> None:
    """A tiled run's config: its train datasets keep the empty tiles the cut kept (a bounded share, as
    background; mmdet's ``filter_empty_gt`` and a ``RandomCrop`` without ``allow_negative_crop`` would drop
    them), and the checkpoint evaluated at the end is the last one: validation during training sees the
    full images at the input size, which does not judge a model trained on full-resolution tiles (the
    final evaluation is sliced)."""
    cfg["default_hooks"]["checkpoint"]["save_best"] = None
    for ds in leaf_datasets(cfg["train_dataloader"]["dataset"]):
        ds["filter_cfg"] = {**(ds.get("filter_cfg") or {}), "filter_empty_gt": False}
        for transform in ds.get("pipeline") or []:
            if transform.get("type") == "RandomCrop":
                transform["allow_negative_crop"] = True


def inference_of_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """How a model with this stored config predicts: its ``raven.sliced_inference``, else full images."""
    meta = config.get("raven") if isinstance(config, Mapping) else None
    found = meta.get(META_KEY) if isinstance(meta, Mapping) else None
    if isinstance(found, Mapping) and found.get("sliced"):
        return {
            "sliced": True,
            "tile_size": int(found.get("tile_size", 0)),
            "overlap": int(found.get("overlap", 0)),
        }
    return {"sliced": False}
