"""Cutting images into overlapping tiles: windows, clipped boxes, a bounded share of empty tiles.

Pure logic (no image I/O): :func:`tile_windows` places square windows over an image, :func:`cut_dataset`
turns a COCO split into one of tiles (a box kept in a tile when the tile shows at least
``min_box_visibility`` of its area, clipped to the tile), and the same windows serve sliced inference on the
full images (``adapters/sliced_inference.py``). Deterministic: the same split, settings and seed give the same
tiles in the same order.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from common.tiling import Tiling
from services.trainer_worker.domain.coco import Annotation, CocoDataset, ImageRecord

# At most this share of a split's tiles are empty (no box kept): background the detector must learn, without
# letting the many empty tiles of a large sparse image drown the objects.
MAX_EMPTY_SHARE = 0.2
TILES_DIR = "tiles"


@dataclass(frozen=True)
class Window:
    """A tile's place in its image, in pixels: ``[x, x + width) x [y, y + height)``."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Tile:
    """One tile of a source image: where to crop it and the name its image gets."""

    image_id: int  # the tile's id in the tiled split
    source: ImageRecord
    window: Window
    file_name: str


def axis_starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile starts along one axis: every ``stride`` pixels, the last flush with the end (none hangs out)."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def tile_windows(width: int, height: int, tiling: Tiling) -> list[Window]:
    """The windows covering a ``width`` x ``height`` image, row by row; an image no larger than the tile is
    one window (the image itself)."""
    tile_w, tile_h = min(tiling.tile_size, width), min(tiling.tile_size, height)
    return [
        Window(x, y, tile_w, tile_h)
        for y in axis_starts(height, tiling.tile_size, tiling.stride)
        for x in axis_starts(width, tiling.tile_size, tiling.stride)
    ]


def clip_box(
    bbox: tuple[float, float, float, float], window: Window
) -> tuple[tuple[float, float, float, float], float] | None:
    """``bbox`` (x, y, w, h in image pixels) cut to ``window``, in the window's pixels, and the share of its
    area that remains; None when nothing of it is inside or it has no area."""
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return None
    left, top = max(x, window.x), max(y, window.y)
    right, bottom = min(x + w, window.x + window.width), min(y + h, window.y + window.height)
    if right <= left or bottom <= top:
        return None
    clipped = (left - window.x, top - window.y, right - left, bottom - top)
    return clipped, (clipped[2] * clipped[3]) / (w * h)


def tile_annotations(
    annotations: list[Annotation], window: Window, min_visibility: float, tile_id: int, first_id: int
) -> list[Annotation]:
    """The boxes ``window`` shows at least ``min_visibility`` of, clipped, numbered from ``first_id``."""
    out: list[Annotation] = []
    for ann in annotations:
        cut = clip_box(ann.bbox, window)
        if cut is None or cut[1] + 1e-9 < min_visibility:
            continue
        box = cut[0]
        out.append(
            Annotation(first_id + len(out), tile_id, ann.category_id, box, box[2] * box[3], ann.iscrowd)
        )
    return out


def cut_dataset(
    dataset: CocoDataset, tiling: Tiling, seed: int, max_empty_share: float = MAX_EMPTY_SHARE
) -> tuple[CocoDataset, list[Tile]]:
    """The split as tiles: a COCO split whose images are the kept tiles (``tiles/...`` file names) and the
    tiles to crop. Every tile with a kept box stays; of the empty ones a seeded random choice stays, at most
    ``max_empty_share`` of all tiles (at least one when no tile has a box, so the split is never empty)."""
    by_image: dict[int, list[Annotation]] = defaultdict(list)
    for ann in dataset.annotations:
        by_image[ann.image_id].append(ann)
    with_boxes: list[tuple[Tile, list[Annotation]]] = []
    empty: list[Tile] = []
    next_id, next_ann = 1, 1
    for image in sorted(dataset.images, key=lambda i: i.id):
        for window in tile_windows(image.width, image.height, tiling):
            tile = Tile(next_id, image, window, _tile_name(image, window))
            next_id += 1
            anns = tile_annotations(by_image[image.id], window, tiling.min_box_visibility, tile.image_id, 1)
            if anns:
                with_boxes.append((tile, anns))
            else:
                empty.append(tile)
    kept_empty = _choose_empty(empty, len(with_boxes), max_empty_share, seed)
    kept = sorted([t for t, _ in with_boxes] + kept_empty, key=lambda t: t.image_id)
    boxes = {t.image_id: anns for t, anns in with_boxes}
    images, annotations = [], []
    for tile in kept:
        images.append(ImageRecord(tile.image_id, tile.file_name, tile.window.width, tile.window.height))
        for ann in boxes.get(tile.image_id, []):
            annotations.append(
                Annotation(next_ann, ann.image_id, ann.category_id, ann.bbox, ann.area, ann.iscrowd)
            )
            next_ann += 1
    return CocoDataset(dataset.categories, tuple(images), tuple(annotations)), kept


def empty_tiles_allowed(tiles_with_boxes: int, max_empty_share: float) -> int:
    """Most empty tiles that keep them at or below ``max_empty_share`` of all tiles."""
    if max_empty_share <= 0:
        return 0
    if max_empty_share >= 1:
        return 1 << 62
    return int(tiles_with_boxes * max_empty_share / (1 - max_empty_share) + 1e-9)


def _choose_empty(empty: list[Tile], with_boxes: int, max_share: float, seed: int) -> list[Tile]:
    allowed = empty_tiles_allowed(with_boxes, max_share) if with_boxes else min(1, len(empty))
    if allowed >= len(empty):
        return list(empty)
    return random.Random(seed).sample(empty, allowed)


def _tile_name(image: ImageRecord, window: Window) -> str:
    return f"{TILES_DIR}/{image.id}_{window.x}_{window.y}.png"
