"""Train/val/test split of a validated COCO dataset.

The seeded stratified split, the checks of a split the dataset already has, and the split manifest. Pure
logic like ``coco.py`` and ``problems.py``, whose records and problem log it works on.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from common.dataset_layout import SPLIT_NAMES
from services.trainer_worker.domain.coco import CocoDataset
from services.trainer_worker.domain.problems import DatasetInvalid, Problem, ProblemLog


@dataclass(frozen=True)
class SplitFractions:
    train: float = 0.7
    val: float = 0.2
    test: float = 0.1

    def __post_init__(self) -> None:
        values = (self.train, self.val, self.test)
        if not all(math.isfinite(v) and v >= 0 for v in values) or self.train <= 0 or self.val <= 0:
            raise ValueError(f"split fractions need train > 0, val > 0, test >= 0; got {values}")
        if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
            raise ValueError(f"split fractions must add up to 1; got {values} (sum {sum(values):g})")

    def as_dict(self) -> dict[str, float]:
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(frozen=True)
class SplitAssignment:
    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]

    def as_dict(self) -> dict[str, tuple[int, ...]]:
        return {"train": self.train, "val": self.val, "test": self.test}


def check_given_split(splits: Mapping[str, CocoDataset], problems: ProblemLog) -> None:
    """A provided split must not share image files between splits and must show every class in train."""
    owner: dict[str, str] = {}
    for split, ds in splits.items():
        for image in ds.images:
            first = owner.setdefault(image.file_name, split)
            if first != split:
                problems.add(
                    Problem.SPLITS_DISAGREE, f"image file {image.file_name!r} is in both {first} and {split}"
                )
    in_train = {a.category_id for a in splits["train"].annotations}
    for cat in splits["train"].categories:
        if cat.id not in in_train and any(
            a.category_id == cat.id for ds in splits.values() for a in ds.annotations
        ):
            problems.add(
                Problem.CLASS_MISSING_FROM_TRAIN, f"category {cat.name!r} has annotations but none in train"
            )


def stratified_split(dataset: CocoDataset, fractions: SplitFractions, seed: int) -> SplitAssignment:
    """Seeded split by iterative stratification on each image's rarest class.

    Independent of the order of images and annotations in the file; every class present lands in train;
    val is never empty. Raises DatasetInvalid when the dataset is too small for that.
    """
    classes_of: dict[int, set[int]] = {image.id: set() for image in dataset.images}
    for a in dataset.annotations:
        classes_of[a.image_id].add(a.category_id)
    freq = Counter(c for cs in classes_of.values() for c in cs)
    rarest = {i: min(cs, key=lambda c: (freq[c], c)) if cs else None for i, cs in classes_of.items()}
    order = sorted(classes_of)
    random.Random(seed).shuffle(order)

    def rarity(image_id: int) -> float:
        cls = rarest[image_id]
        return math.inf if cls is None else freq[cls]

    order.sort(key=rarity)  # stable: the shuffle decides among equally rare images
    frac = fractions.as_dict()
    active = [s for s in SPLIT_NAMES if frac[s] > 0]
    want_total = {s: frac[s] * len(order) for s in active}
    want_class = {c: {s: frac[s] * n for s in active} for c, n in freq.items()}
    assigned: dict[str, list[int]] = {s: [] for s in SPLIT_NAMES}
    for image_id in order:
        c = rarest[image_id]
        want = want_class[c] if c is not None else want_total
        split = max(active, key=lambda s: (want[s], want_total[s], -SPLIT_NAMES.index(s)))
        assigned[split].append(image_id)
        want_total[split] -= 1
        for cls in classes_of[image_id]:
            want_class[cls][split] -= 1
    _ensure_classes_in_train(assigned, classes_of)
    _ensure_val_not_empty(assigned, classes_of)
    return SplitAssignment(*(tuple(sorted(assigned[s])) for s in SPLIT_NAMES))


def _ensure_classes_in_train(assigned: dict[str, list[int]], classes_of: Mapping[int, set[int]]) -> None:
    in_train = set().union(*(classes_of[i] for i in assigned["train"]))
    for cls in sorted(set().union(*classes_of.values()) - in_train):
        if cls in in_train:
            continue
        split, image_id = min((s, i) for s in ("test", "val") for i in assigned[s] if cls in classes_of[i])
        assigned[split].remove(image_id)
        assigned["train"].append(image_id)
        in_train |= classes_of[image_id]


def _ensure_val_not_empty(assigned: dict[str, list[int]], classes_of: Mapping[int, set[int]]) -> None:
    if assigned["val"]:
        return
    donor = "test" if assigned["test"] else "train"
    in_donor = Counter(c for i in assigned[donor] for c in classes_of[i])
    # a train image may only move when each of its classes stays in train
    movable = [i for i in assigned[donor] if donor == "test" or all(in_donor[c] > 1 for c in classes_of[i])]
    if not movable:
        n = sum(len(v) for v in assigned.values())
        raise DatasetInvalid(
            f"dataset has only {n} image(s): not enough to hold every class in train and still "
            "keep a validation image; add images",
            [],
            [Problem.SPLIT_TOO_SMALL],
        )
    image_id = max(movable)
    assigned[donor].remove(image_id)
    assigned["val"].append(image_id)


def split_manifest(
    splits: Mapping[str, CocoDataset],
    *,
    seed: int,
    fractions: SplitFractions,
    given: bool,
    class_names: Sequence[str],
    snapshot_sha256: str,
) -> dict[str, object]:
    """Split manifest stored as a run artifact; ``file_names`` disambiguates ids of provided split files."""
    manifest: dict[str, object] = {
        "seed": seed,
        "fractions": fractions.as_dict(),
        "split_source": "dataset" if given else "seeded",
        "class_names": list(class_names),
        "snapshot_sha256": snapshot_sha256,
    }
    for split in SPLIT_NAMES:
        images = splits[split].images if split in splits else ()
        manifest[split] = [i.id for i in images]
    manifest["file_names"] = {
        s: [i.file_name for i in splits[s].images] if s in splits else [] for s in SPLIT_NAMES
    }
    return manifest
