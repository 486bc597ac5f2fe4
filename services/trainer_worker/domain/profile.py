"""What is in a dataset version: counts per split and class, image sizes, box sizes, boxes per image, and
advice when the objects are too small for a template's input size.

A box's size is ``sqrt(w * h)`` of its bbox in pixels of the (EXIF-oriented) image; the COCO classes small /
medium / large use the annotation's ``area`` as COCO evaluation does (< 32², < 96², above). Pure logic.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from common.dataset_layout import SPLIT_NAMES
from common.tiling import MIN_TILE
from services.trainer_worker.domain.coco import CocoDataset

SIZE_BIN_EDGES = (8, 16, 32, 64, 128)  # px; a side of exactly 8 is in "8-16"
SIZE_BIN_LABELS = ("<8", "8-16", "16-32", "32-64", "64-128", ">128")
COCO_SMALL, COCO_MEDIUM = 32**2, 96**2
COCO_LABELS = ("small", "medium", "large")
BOXES_PER_IMAGE_EDGES = (1, 2, 4, 8, 16, 32)
BOXES_PER_IMAGE_LABELS = ("0", "1", "2-3", "4-7", "8-15", "16-31", ">=32")
MIN_DETECTABLE_PX = 8  # below this a box covers less than one cell of the finest (stride 8) feature map
MOST = 0.5  # "most boxes": the share above which the profile advises
MAX_INPUT_SIZE, INPUT_SIZE_MULTIPLE = 2048, 32  # common.hyperparameters' image_size limits


def box_side(w: float, h: float) -> float:
    return math.sqrt(max(w, 0.0) * max(h, 0.0))


def size_bin(side: float) -> int:
    """Index into SIZE_BIN_LABELS."""
    return bisect.bisect_right(SIZE_BIN_EDGES, side)


def coco_size(area: float) -> int:
    """Index into COCO_LABELS."""
    return 0 if area < COCO_SMALL else 1 if area < COCO_MEDIUM else 2


@dataclass(frozen=True)
class Distribution:
    min: float
    max: float
    mean: float
    median: float


@dataclass(frozen=True)
class Bin:
    label: str
    lower: float
    upper: float  # 0: unbounded
    count: int


@dataclass(frozen=True)
class SplitCount:
    split: str
    images: int
    annotations: int


@dataclass(frozen=True)
class ClassProfile:
    name: str
    category_id: int  # the dataset's own id
    images: int
    annotations: int
    splits: tuple[SplitCount, ...]


@dataclass(frozen=True)
class DatasetProfile:
    images: int
    annotations: int
    splits: tuple[SplitCount, ...]
    classes: tuple[ClassProfile, ...]
    image_sizes: tuple[tuple[int, int, int], ...]  # (width, height, images), most frequent first
    image_widths: Distribution
    image_heights: Distribution
    box_sizes: tuple[Bin, ...]
    coco_box_sizes: tuple[Bin, ...]
    boxes_per_image: Distribution
    boxes_per_image_histogram: tuple[Bin, ...]
    empty_images: int
    share_below_min: float  # of boxes, below MIN_DETECTABLE_PX once resized to reference_input_size
    recommendation: str  # "" when the input size suits the boxes
    reference_input_size: int
    # A run's tiling.tile_size when the boxes are too small for the input size: tiles of the input size at
    # full resolution keep the boxes at their own size (ravenctl runs create --tiling auto); 0 = no advice
    recommended_tile_size: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def profile_dataset(
    splits: Mapping[str, CocoDataset],
    reference_input_size: int,
    category_ids: Mapping[int, int] | None = None,
    max_image_sizes: int = 50,
) -> DatasetProfile:
    """Profile the splits; ``category_ids`` maps the splits' category ids to the dataset's own ids."""
    order = [s for s in SPLIT_NAMES if s in splits]
    images = [i for s in order for i in splits[s].images]
    annotations = [a for s in order for a in splits[s].annotations]
    per_image = Counter(a.image_id for a in annotations)
    sides = [box_side(a.bbox[2], a.bbox[3]) for a in annotations]
    by_id = {i.id: i for i in images}
    ratios = sorted(
        side / max(by_id[a.image_id].width, by_id[a.image_id].height)
        for side, a in zip(sides, annotations, strict=True)
    )
    largest_side = max((max(i.width, i.height) for i in images), default=0)
    share, advice, tile = _advice(reference_input_size, ratios, largest_side)
    dims = Counter((i.width, i.height) for i in images)
    counts = [per_image[i.id] for i in images]
    return DatasetProfile(
        images=len(images),
        annotations=len(annotations),
        splits=tuple(SplitCount(s, len(splits[s].images), len(splits[s].annotations)) for s in order),
        classes=_classes(splits, order, category_ids or {}),
        image_sizes=tuple((w, h, n) for (w, h), n in dims.most_common(max_image_sizes)),
        image_widths=_distribution([i.width for i in images]),
        image_heights=_distribution([i.height for i in images]),
        box_sizes=_bins(Counter(size_bin(s) for s in sides), SIZE_BIN_LABELS, SIZE_BIN_EDGES),
        coco_box_sizes=_bins(
            Counter(coco_size(a.area) for a in annotations), COCO_LABELS, (COCO_SMALL, COCO_MEDIUM)
        ),
        boxes_per_image=_distribution(counts),
        boxes_per_image_histogram=_bins(
            Counter(bisect.bisect_right(BOXES_PER_IMAGE_EDGES, c) for c in counts),
            BOXES_PER_IMAGE_LABELS,
            BOXES_PER_IMAGE_EDGES,
        ),
        empty_images=sum(1 for c in counts if not c),
        share_below_min=share,
        recommendation=advice,
        reference_input_size=reference_input_size,
        recommended_tile_size=tile,
    )


def _classes(
    splits: Mapping[str, CocoDataset], order: Sequence[str], own_ids: Mapping[int, int]
) -> tuple[ClassProfile, ...]:
    categories = {c.id: c.name for s in order for c in splits[s].categories}
    out = []
    for cat_id, name in sorted(categories.items()):
        per_split = []
        for s in order:
            anns = [a for a in splits[s].annotations if a.category_id == cat_id]
            per_split.append(SplitCount(s, len({a.image_id for a in anns}), len(anns)))
        out.append(
            ClassProfile(
                name,
                own_ids.get(cat_id, cat_id),
                sum(c.images for c in per_split),
                sum(c.annotations for c in per_split),
                tuple(per_split),
            )
        )
    return tuple(out)


def _bins(counts: Counter[int], labels: Sequence[str], edges: Sequence[float]) -> tuple[Bin, ...]:
    lowers = (0.0, *map(float, edges))
    uppers = (*map(float, edges), 0.0)
    return tuple(Bin(label, lowers[k], uppers[k], counts[k]) for k, label in enumerate(labels))


def _distribution(values: Sequence[float]) -> Distribution:
    if not values:
        return Distribution(0.0, 0.0, 0.0, 0.0)
    return Distribution(
        float(min(values)),
        float(max(values)),
        float(statistics.fmean(values)),
        float(statistics.median(values)),
    )


def _advice(input_size: int, ratios: list[float], largest_side: int) -> tuple[float, str, int]:
    """``ratios``: sorted box sides relative to their image's longer side (keep-ratio resize to a square).
    Returns the share below ``MIN_DETECTABLE_PX``, the advice, and the tile size to train on (0: none)."""
    if not ratios or input_size <= 0:
        return 0.0, "", 0
    below = bisect.bisect_left(ratios, MIN_DETECTABLE_PX / input_size) / len(ratios)
    if below <= MOST:
        return below, "", 0
    tile = recommended_tile_size(input_size, largest_side)
    tiles = f"tiling.tile_size {tile}, ravenctl runs create --tiling auto" if tile else ""
    median = statistics.median(ratios)
    needed = _round_up(MIN_DETECTABLE_PX / median) if median > 0 else MAX_INPUT_SIZE + 1
    shrink = f"{below:.0%} of the boxes would be below {MIN_DETECTABLE_PX} px at input size {input_size}"
    if needed <= MAX_INPUT_SIZE:
        or_tiles = f", or train on tiles of {tile} px at full resolution ({tiles})" if tile else ""
        return below, f"{shrink}: set image_size to at least {needed}{or_tiles}", tile
    how = f"crops of about {input_size} px at full resolution" + (f"; {tiles}" if tiles else "")
    return (
        below,
        (
            f"{shrink}, and even image_size {MAX_INPUT_SIZE} keeps half of them below it: train on tiles "
            f"(cut the images into {how})"
        ),
        tile,
    )


def recommended_tile_size(input_size: int, largest_side: int) -> int:
    """Tiles of the input size: the detector then sees the boxes at their own size. None (0) when the
    images are no larger than a tile (tiling would cut nothing)."""
    tile = max(input_size, MIN_TILE)
    return tile if largest_side > tile else 0


def _round_up(side: float) -> int:
    return int(math.ceil(side / INPUT_SIZE_MULTIPLE) * INPUT_SIZE_MULTIPLE)
