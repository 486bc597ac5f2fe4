"""Seeded stratified split: deterministic, a partition, every class in train, close to the fractions."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trainer_worker.domain.coco import Annotation, Category, CocoDataset, ImageRecord
from services.trainer_worker.domain.problems import DatasetInvalid, Problem, ProblemLog
from services.trainer_worker.domain.split import (
    SplitFractions,
    check_given_split,
    split_manifest,
    stratified_split,
)


def dataset(image_classes: dict[int, list[int]], n_classes: int) -> CocoDataset:
    """Images with the given category ids (one box each); ids as given, so tests can shuffle them."""
    images = tuple(ImageRecord(i, f"images/{i}.jpg", 64, 64) for i in image_classes)
    annotations: list[Annotation] = []
    for image_id, classes in image_classes.items():
        for cls in classes:
            annotations.append(Annotation(len(annotations) + 1, image_id, cls, (1.0, 1.0, 5.0, 5.0), 25.0, 0))
    categories = tuple(Category(c, f"c{c}") for c in range(1, n_classes + 1))
    return CocoDataset(categories, images, tuple(annotations))


def skewed(n_images: int, seed: int = 0) -> dict[int, list[int]]:
    """Class 1 common, class 5 rare (a handful of images), some images empty."""
    rng = random.Random(seed)
    weights = [50, 25, 15, 8, 2]
    out: dict[int, list[int]] = {}
    for i in range(1, n_images + 1):
        k = rng.choice([0, 1, 1, 2, 3])
        out[i] = rng.choices(range(1, 6), weights, k=k)
    out[n_images + 1] = [5]  # the rare class exists at least once
    return out


def classes_in(ds: CocoDataset, ids: tuple[int, ...]) -> set[int]:
    keep = set(ids)
    return {a.category_id for a in ds.annotations if a.image_id in keep}


def test_same_seed_same_split_whatever_the_listing_order() -> None:
    ds = dataset(skewed(300), 5)
    reordered = CocoDataset(ds.categories, tuple(reversed(ds.images)), tuple(reversed(ds.annotations)))
    first = stratified_split(ds, SplitFractions(), seed=7)
    assert stratified_split(reordered, SplitFractions(), seed=7) == first
    assert stratified_split(ds, SplitFractions(), seed=8) != first


def test_split_is_a_partition_close_to_the_fractions_and_stratified() -> None:
    ds = dataset(skewed(1000), 5)
    split = stratified_split(ds, SplitFractions(), seed=3)
    all_ids = [i.id for i in ds.images]
    assert sorted(split.train + split.val + split.test) == sorted(all_ids)
    n = len(all_ids)
    assert abs(len(split.train) - 0.7 * n) <= 0.02 * n
    assert abs(len(split.val) - 0.2 * n) <= 0.02 * n
    assert abs(len(split.test) - 0.1 * n) <= 0.02 * n
    # per class, the share of images in train stays near 70 %
    per_image = {i: set(c) for i, c in skewed(1000).items()}
    train = set(split.train)
    for cls in (1, 2, 3):
        with_cls = [i for i, cs in per_image.items() if cls in cs]
        share = sum(i in train for i in with_cls) / len(with_cls)
        assert 0.65 <= share <= 0.75, (cls, share)


def test_configurable_fractions_and_empty_test() -> None:
    ds = dataset({i: [1 + i % 2] for i in range(1, 101)}, 2)
    split = stratified_split(ds, SplitFractions(train=0.5, val=0.5, test=0.0), seed=0)
    assert (len(split.train), len(split.val), len(split.test)) == (50, 50, 0)


@pytest.mark.parametrize(
    "fractions",
    [(0.7, 0.2, 0.2), (0.0, 0.9, 0.1), (0.9, 0.0, 0.1), (1.2, -0.1, -0.1), (float("nan"), 0.5, 0.5)],
)
def test_invalid_fractions_are_rejected(fractions: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="split fractions"):
        SplitFractions(*fractions)


def test_tiny_dataset_keeps_every_class_in_train_and_one_val_image() -> None:
    ds = dataset({1: [1], 2: [2], 3: [1, 2]}, 2)
    split = stratified_split(ds, SplitFractions(), seed=0)
    assert classes_in(ds, split.train) == {1, 2}
    assert len(split.val) == 1


def test_too_small_to_split_is_a_dataset_error() -> None:
    ds = dataset({1: [1], 2: [2]}, 2)
    with pytest.raises(DatasetInvalid) as caught:
        stratified_split(ds, SplitFractions(), seed=0)
    assert caught.value.kinds == (Problem.SPLIT_TOO_SMALL,)
    assert "only 2 image(s)" in caught.value.message


@settings(max_examples=60, deadline=None)
@given(
    image_classes=st.dictionaries(
        st.integers(1, 10_000), st.lists(st.integers(1, 6), max_size=4), min_size=4, max_size=120
    ),
    seed=st.integers(0, 2**32),
    fractions=st.sampled_from(
        [SplitFractions(), SplitFractions(0.8, 0.2, 0.0), SplitFractions(0.34, 0.33, 0.33)]
    ),
)
def test_property_every_present_class_is_in_train_and_val_is_not_empty(
    image_classes: dict[int, list[int]], seed: int, fractions: SplitFractions
) -> None:
    ds = dataset(image_classes, 6)
    present = {c for cs in image_classes.values() for c in cs}
    try:
        split = stratified_split(ds, fractions, seed)
    except DatasetInvalid:
        # only legitimate when no image can leave train without taking a class's last example with it
        per_class = Counter(c for cs in image_classes.values() for c in set(cs))
        assert all(any(per_class[c] == 1 for c in cs) for cs in image_classes.values() if cs)
        assert all(image_classes.values())
        return
    assert sorted(split.train + split.val + split.test) == sorted(image_classes)
    assert classes_in(ds, split.train) == present
    assert split.val
    if fractions.test == 0:
        assert not split.test


def test_given_split_must_not_leak_images_and_must_hold_every_class_in_train() -> None:
    ds = dataset({1: [1], 2: [1], 3: [2]}, 2)
    splits = {"train": ds.subset([1, 2]), "val": ds.subset([2, 3])}
    problems = ProblemLog()
    check_given_split(splits, problems)
    with pytest.raises(DatasetInvalid) as caught:
        problems.raise_if_any("dataset 'x'")
    assert set(caught.value.kinds) == {Problem.SPLITS_DISAGREE, Problem.CLASS_MISSING_FROM_TRAIN}
    assert "image file 'images/2.jpg' is in both train and val" in caught.value.details
    assert "category 'c2' has annotations but none in train" in caught.value.details


def test_manifest_lists_ids_and_files_per_split() -> None:
    ds = dataset({i: [1] for i in range(1, 11)}, 1)
    split = stratified_split(ds, SplitFractions(), seed=1)
    splits = {name: ds.subset(ids) for name, ids in split.as_dict().items()}
    manifest = split_manifest(
        splits, seed=1, fractions=SplitFractions(), given=False, class_names=["c1"], snapshot_sha256="ab" * 32
    )
    assert manifest["train"] == list(split.train) and manifest["val"] == list(split.val)
    assert manifest["test"] == list(split.test)
    assert manifest["file_names"]["val"] == [f"images/{i}.jpg" for i in split.val]  # type: ignore[index]
    assert manifest["fractions"] == {"train": 0.7, "val": 0.2, "test": 0.1}
    assert manifest["seed"] == 1 and manifest["split_source"] == "seeded"
