"""domain/tiling.py: windows cover the image, boxes are clipped and kept by visibility, empty tiles bounded,
the same seed gives the same tiles."""

from __future__ import annotations

import itertools

import pytest

from common.tiling import Tiling
from services.trainer_worker.domain.coco import Annotation, Category, CocoDataset, ImageRecord
from services.trainer_worker.domain.tiling import (
    Window,
    axis_starts,
    clip_box,
    cut_dataset,
    empty_tiles_allowed,
    tile_windows,
)


def ann(id_: int, image_id: int, bbox: tuple[float, float, float, float], category: int = 1) -> Annotation:
    return Annotation(id_, image_id, category, bbox, bbox[2] * bbox[3], 0)


def test_axis_starts_step_by_stride_and_end_flush_with_the_image() -> None:
    assert axis_starts(1000, 400, 300) == [0, 300, 600]
    assert axis_starts(1001, 400, 300) == [0, 300, 600, 601]
    assert axis_starts(400, 400, 300) == [0] and axis_starts(100, 400, 300) == [0]


@pytest.mark.parametrize(("width", "height"), [(1600, 1600), (1000, 700), (401, 399), (64, 900)])
def test_windows_cover_every_pixel_and_stay_inside(width: int, height: int) -> None:
    tiling = Tiling(400, 80, 0.5)
    windows = tile_windows(width, height, tiling)
    covered = [[False] * width for _ in range(height)] if width * height < 10**6 else None
    for w in windows:
        assert 0 <= w.x and w.x + w.width <= width and 0 <= w.y and w.y + w.height <= height
        assert w.width == min(400, width) and w.height == min(400, height)
        if covered is not None:
            for y in range(w.y, w.y + w.height):
                covered[y][w.x : w.x + w.width] = [True] * w.width
    if covered is not None:
        assert all(all(row) for row in covered)
    xs = sorted({w.x for w in windows})
    assert all(b - a <= tiling.stride for a, b in itertools.pairwise(xs))  # neighbours share >= 80 px


def test_a_box_is_clipped_to_the_window_in_its_coordinates_with_its_visible_share() -> None:
    window = Window(100, 200, 50, 50)
    assert clip_box((110, 210, 10, 20), window) == ((10, 10, 10, 20), 1.0)
    (box, share) = clip_box((140, 190, 20, 20), window)  # type: ignore[misc]
    assert box == (40, 0, 10, 10) and share == pytest.approx(0.25)
    assert clip_box((0, 0, 50, 50), window) is None  # outside
    assert clip_box((150, 200, 10, 10), window) is None  # touches the right edge only
    assert clip_box((110, 210, 0, 5), window) is None  # no area


def dataset(
    boxes_per_image: dict[int, list[tuple[float, float, float, float]]], side: int = 1000
) -> CocoDataset:
    images = tuple(ImageRecord(i, f"images/{i}.png", side, side) for i in sorted(boxes_per_image))
    anns, n = [], 1
    for image_id, boxes in sorted(boxes_per_image.items()):
        for box in boxes:
            anns.append(ann(n, image_id, box))
            n += 1
    return CocoDataset((Category(1, "bottle"),), images, tuple(anns))


def test_cut_keeps_boxes_by_visibility_and_numbers_tiles_and_boxes_from_one() -> None:
    # 1000 px, tiles of 400 with overlap 100: starts 0, 300, 600 on each axis
    source = dataset({7: [(390, 50, 20, 20), (10, 10, 10, 10)]})
    tiled, tiles = cut_dataset(source, Tiling(400, 100, 0.5), seed=0, max_empty_share=1.0)
    assert len(tiles) == 9 and [t.image_id for t in tiles] == list(range(1, 10))
    by_tile = {t.window: [a for a in tiled.annotations if a.image_id == t.image_id] for t in tiles}
    first = by_tile[Window(0, 0, 400, 400)]
    # (390, 50, 20, 20) shows half in the first tile (kept at 0.5) and whole in the second
    assert sorted(a.bbox for a in first) == [(10, 10, 10, 10), (390, 50, 10, 20)]
    assert [a.bbox for a in by_tile[Window(300, 0, 400, 400)]] == [(90, 50, 20, 20)]
    assert [a.id for a in tiled.annotations] == list(range(1, len(tiled.annotations) + 1))
    strict, _ = cut_dataset(source, Tiling(400, 100, 0.6), seed=0, max_empty_share=1.0)
    assert len(strict.annotations) == len(tiled.annotations) - 1  # the half-visible one dropped
    assert all(a.area == a.bbox[2] * a.bbox[3] for a in tiled.annotations)
    assert {i.file_name for i in tiled.images} == {t.file_name for t in tiles}
    assert all(i.file_name.startswith("tiles/7_") for i in tiled.images)


def test_empty_tiles_are_bounded_and_chosen_by_the_seed() -> None:
    source = dataset({i: [(500, 500, 12, 12)] for i in range(1, 6)}, side=1600)
    tiling = Tiling(400, 0, 0.5)  # 16 tiles per image, one with the box
    tiled, tiles = cut_dataset(source, tiling, seed=3, max_empty_share=0.2)
    with_boxes = {a.image_id for a in tiled.annotations}
    assert len(with_boxes) == 5
    assert len(tiles) - len(with_boxes) == empty_tiles_allowed(5, 0.2) == 1
    again, again_tiles = cut_dataset(source, tiling, seed=3, max_empty_share=0.2)
    assert again == tiled and again_tiles == tiles
    others = {tuple(t.file_name for t in cut_dataset(source, tiling, seed=s)[1]) for s in range(8)}
    assert len(others) > 1  # another seed, other empty tiles
    none_empty, _ = cut_dataset(source, tiling, seed=3, max_empty_share=0.0)
    assert len(none_empty.images) == 5


def test_a_split_without_boxes_keeps_one_tile_and_a_small_image_is_its_own_tile() -> None:
    tiled, tiles = cut_dataset(dataset({1: [], 2: []}), Tiling(400, 0, 0.5), seed=0)
    assert len(tiles) == 1 and not tiled.annotations
    small, small_tiles = cut_dataset(dataset({1: [(5, 5, 10, 10)]}, side=300), Tiling(400, 0, 0.5), seed=0)
    assert [t.window for t in small_tiles] == [Window(0, 0, 300, 300)]
    assert [a.bbox for a in small.annotations] == [(5, 5, 10, 10)]


@pytest.mark.parametrize(
    ("with_boxes", "share", "allowed"), [(8, 0.2, 2), (4, 0.2, 1), (3, 0.2, 0), (10, 0.5, 10)]
)
def test_empty_tiles_allowed_keeps_their_share_at_most_the_bound(
    with_boxes: int, share: float, allowed: int
) -> None:
    assert empty_tiles_allowed(with_boxes, share) == allowed
    assert allowed / (allowed + with_boxes) <= share + 1e-12
    assert (allowed + 1) / (allowed + 1 + with_boxes) > share
