"""The dataset profile on a constructed dataset: every count known in advance."""

from __future__ import annotations

from services.trainer_worker.domain.coco import Annotation, Category, CocoDataset, ImageRecord
from services.trainer_worker.domain.profile import (
    Bin,
    Distribution,
    SplitCount,
    profile_dataset,
    size_bin,
)

CATS = (Category(1, "bottle"), Category(2, "tire"))


def box(ann_id: int, image_id: int, cat: int, w: float, h: float) -> Annotation:
    return Annotation(ann_id, image_id, cat, (0.0, 0.0, w, h), w * h, 0)


def test_bin_edges_are_half_open() -> None:
    sides = (0, 7.99, 8, 15.9, 16, 32, 64, 127.9, 128, 5000)
    assert [size_bin(s) for s in sides] == [0, 0, 1, 1, 2, 3, 4, 4, 5, 5]


def test_profile_counts_bins_and_sizes_exactly() -> None:
    train = CocoDataset(
        CATS,
        (
            ImageRecord(1, "a.jpg", 640, 480),
            ImageRecord(2, "b.jpg", 640, 480),
            ImageRecord(3, "c.jpg", 100, 50),
        ),
        (
            box(1, 1, 1, 4, 4),  # side 4: <8, small
            box(2, 1, 1, 8, 8),  # 8: 8-16
            box(3, 1, 2, 20, 20),  # 20: 16-32
            box(4, 2, 2, 40, 40),  # 40: 32-64, medium (1600 >= 1024)
            box(5, 2, 2, 100, 100),  # 100: 64-128, large (10000 >= 9216)
        ),
    )
    val = CocoDataset(CATS, (ImageRecord(4, "d.jpg", 640, 480),), (box(6, 4, 1, 200, 50),))  # side 100
    profile = profile_dataset({"train": train, "val": val}, 320, {1: 7, 2: 9})
    assert (profile.images, profile.annotations, profile.empty_images) == (4, 6, 1)
    assert profile.splits == (SplitCount("train", 3, 5), SplitCount("val", 1, 1))
    bottle, tire = profile.classes
    assert (bottle.name, bottle.category_id, bottle.images, bottle.annotations) == ("bottle", 7, 2, 3)
    assert bottle.splits == (SplitCount("train", 1, 2), SplitCount("val", 1, 1))
    assert (tire.category_id, tire.images, tire.annotations) == (9, 2, 3)
    assert [(b.label, b.count) for b in profile.box_sizes] == [
        ("<8", 1), ("8-16", 1), ("16-32", 1), ("32-64", 1), ("64-128", 2), (">128", 0),
    ]  # fmt: skip
    assert profile.box_sizes[0] == Bin("<8", 0.0, 8.0, 1) and profile.box_sizes[-1].upper == 0.0
    assert [(b.label, b.count) for b in profile.coco_box_sizes] == [("small", 3), ("medium", 1), ("large", 2)]
    assert [b.count for b in profile.boxes_per_image_histogram] == [1, 1, 2, 0, 0, 0, 0]  # 0, 1, 2-3, ...
    assert profile.boxes_per_image == Distribution(0.0, 3.0, 1.5, 1.5)
    assert profile.image_widths == Distribution(100.0, 640.0, 505.0, 640.0)
    assert profile.image_sizes == ((640, 480, 3), (100, 50, 1))
    # at 320 px a 640 px image halves: sides 4, 8, 20 become 2, 4, 10 -> 2 of 6 below 8 px: no advice
    assert abs(profile.share_below_min - 2 / 6) < 1e-9 and profile.recommendation == ""
    assert profile.to_dict()["annotations"] == 6


def test_advice_when_most_boxes_would_shrink_below_8_px() -> None:
    images = tuple(ImageRecord(i, f"{i}.jpg", 4000, 3000) for i in range(1, 5))
    anns = tuple(box(i, i, 1, 30, 30) for i in range(1, 5))  # 30 px of 4000: 2.4 px at 320
    profile = profile_dataset({"train": CocoDataset(CATS[:1], images, anns)}, 320)
    assert profile.share_below_min == 1.0
    assert "image_size to at least 1088" in profile.recommendation  # 8 / (30 / 4000) = 1066.7 -> 1088
    tiny_boxes = tuple(box(i, i, 1, 3, 3) for i in range(1, 5))  # would need 10667 px: tile instead
    tiles = profile_dataset({"train": CocoDataset(CATS[:1], images, tiny_boxes)}, 640)
    assert "tiles" in tiles.recommendation and "640 px" in tiles.recommendation
