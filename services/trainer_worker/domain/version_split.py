"""The split of a dataset version: computed once from its content, grouped, stratified, leak-checked.

* **Seeded by the snapshot**: the version's snapshot sha256 seeds the split, never a run's seed, so every run
  of one version trains and validates on the same images.
* **Grouped**: the unit of the split is a group of images that must stay together. Images sharing a declared
  group (``coco.GROUP_KEYS``), else a directory, form a group; exact and near-duplicate images
  (``duplicates.py``) join their groups (union-find), so a flight, its resaved copies and its neighbouring
  frames land in one split.
* **Stratified by class and box size**: groups go, rarest feature first, to the split whose share of that
  feature (and of images) lags its fraction most.
* **A split the dataset carries** is kept; its leaks (groups or duplicates on more than one side) are
  reported, not fixed.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from posixpath import dirname

from common.dataset_layout import SPLIT_NAMES
from services.trainer_worker.domain.coco import CocoDataset, ImageRecord
from services.trainer_worker.domain.duplicates import DuplicateSet, UnionFind
from services.trainer_worker.domain.problems import DatasetInvalid, Problem
from services.trainer_worker.domain.profile import box_side, size_bin
from services.trainer_worker.domain.split import SplitAssignment, SplitFractions

Feature = tuple[str, int]  # ("class", category id) or ("size", SIZE_BIN index)


@dataclass(frozen=True)
class Leak:
    """Images that belong together but sit in more than one split of a kept split."""

    reason: str  # "exact duplicate", "near duplicate", "same group"
    splits: tuple[str, ...]
    file_names: tuple[str, ...]


def split_seed(snapshot_sha256: str, option_seed: int = 0) -> int:
    """The split's seed: the version's content and its own split option, nothing a run chooses."""
    text = f"raven-split-v1:{snapshot_sha256}:{option_seed}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:16], 16)


def grouping_rule(images: Sequence[ImageRecord], active_splits: int) -> str:
    """What groups the images: the declared field (``group``, ``sequence`` or ``video_id``, the one most
    entries use) when any entry declares one; else ``directory`` when the files sit in enough directories to
    fill every split; else ``image`` (each image its own group)."""
    declared = Counter(i.group.split(":", 1)[0] for i in images if i.group)
    if declared:
        return declared.most_common(1)[0][0]
    return "directory" if len({dirname(i.file_name) for i in images}) >= active_splits else "image"


def group_key(image: ImageRecord, rule: str) -> str:
    if image.group:
        return image.group
    if rule == "directory":
        return "dir:" + dirname(image.file_name)
    return f"image:{image.id}"


def split_units(ds: CocoDataset, duplicates: Sequence[DuplicateSet], rule: str) -> list[tuple[int, ...]]:
    """The groups of image ids that move together: same group key, or linked by a duplicate set."""
    links: UnionFind[str] = UnionFind()
    by_file: dict[str, list[int]] = {}
    for image in sorted(ds.images, key=lambda i: i.id):
        links.union(f"id:{image.id}", group_key(image, rule))
        by_file.setdefault(image.file_name, []).append(image.id)
    for dup in duplicates:
        members = [f"id:{i}" for name in dup.file_names for i in by_file.get(name, ())]
        for other in members[1:]:
            links.union(members[0], other)
    units = [tuple(sorted(int(m[3:]) for m in g if m.startswith("id:"))) for g in links.groups()]
    return sorted(u for u in units if u)


def grouped_split(
    ds: CocoDataset, units: Sequence[tuple[int, ...]], fractions: SplitFractions, seed: int
) -> SplitAssignment:
    """Assign whole units, rarest feature first; every class present lands in train, val is never empty.

    Raises:
        DatasetInvalid: too few groups to keep every class in train and a non-empty val.
    """
    features = _unit_features(ds, units)
    freq: Counter[Feature] = Counter()
    for unit_features in features:
        freq.update(unit_features)
    order = list(range(len(units)))
    random.Random(seed).shuffle(order)
    order.sort(key=lambda u: (min((freq[f] for f in features[u]), default=10**12), -len(units[u])))
    frac = fractions.as_dict()
    active = [s for s in SPLIT_NAMES if frac[s] > 0]
    total_images = sum(len(u) for u in units)
    want_images = {s: frac[s] * total_images for s in active}
    want = {f: {s: frac[s] * n for s in active} for f, n in freq.items()}
    assigned: dict[str, list[int]] = {s: [] for s in SPLIT_NAMES}
    for u in order:
        weight = sum(features[u].values()) or 1

        def lag(s: str, u: int = u, weight: int = weight) -> tuple[float, int]:
            # the unit's features, each by its share of the unit, lagging their fraction in split s
            lags = sum(n * want[f][s] / freq[f] for f, n in features[u].items()) / weight
            return (lags + want_images[s] / max(total_images, 1), -SPLIT_NAMES.index(s))

        split = max(active, key=lag)
        assigned[split].append(u)
        want_images[split] -= len(units[u])
        for f, n in features[u].items():
            want[f][split] -= n
    _classes_into_train(assigned, units, ds)
    _val_not_empty(assigned, units, ds)
    return SplitAssignment(*(tuple(sorted(i for u in assigned[s] for i in units[u])) for s in SPLIT_NAMES))


def _unit_features(ds: CocoDataset, units: Sequence[tuple[int, ...]]) -> list[Counter[Feature]]:
    unit_of = {i: n for n, unit in enumerate(units) for i in unit}
    features: list[Counter[Feature]] = [Counter() for _ in units]
    for a in ds.annotations:
        f = features[unit_of[a.image_id]]
        f[("class", a.category_id)] += 1
        f[("size", size_bin(box_side(a.bbox[2], a.bbox[3])))] += 1
    return features


def _classes_of(units: Sequence[tuple[int, ...]], ds: CocoDataset) -> list[set[int]]:
    unit_of = {i: n for n, unit in enumerate(units) for i in unit}
    classes: list[set[int]] = [set() for _ in units]
    for a in ds.annotations:
        classes[unit_of[a.image_id]].add(a.category_id)
    return classes


def _classes_into_train(
    assigned: dict[str, list[int]], units: Sequence[tuple[int, ...]], ds: CocoDataset
) -> None:
    classes = _classes_of(units, ds)
    in_train = set().union(*(classes[u] for u in assigned["train"]))
    for cls in sorted(set().union(*classes) - in_train):
        if cls in in_train:
            continue
        split, unit = min(
            ((s, u) for s in ("test", "val") for u in assigned[s] if cls in classes[u]),
            key=lambda su: (len(units[su[1]]), su[1]),
        )
        assigned[split].remove(unit)
        assigned["train"].append(unit)
        in_train |= classes[unit]


def _val_not_empty(assigned: dict[str, list[int]], units: Sequence[tuple[int, ...]], ds: CocoDataset) -> None:
    if assigned["val"]:
        return
    classes = _classes_of(units, ds)
    for donor in ("test", "train"):
        in_donor = Counter(c for u in assigned[donor] for c in classes[u])
        movable = [
            u
            for u in assigned[donor]
            if donor == "test" or (len(assigned[donor]) > 1 and all(in_donor[c] > 1 for c in classes[u]))
        ]
        if movable:
            unit = min(movable, key=lambda u: (len(units[u]), u))
            assigned[donor].remove(unit)
            assigned["val"].append(unit)
            return
    raise DatasetInvalid(
        f"the dataset's {sum(len(u) for u in units)} image(s) form only {len(units)} group(s) that must "
        "stay together (declared groups, directories, duplicates): not enough to hold every class in "
        "train and still keep a validation group; add images or groups",
        [],
        [Problem.SPLIT_TOO_SMALL],
    )


def find_leaks(splits: Mapping[str, CocoDataset], duplicates: Sequence[DuplicateSet]) -> list[Leak]:
    """Declared groups and duplicate sets of a kept split that appear in more than one split."""
    split_of_file: dict[str, set[str]] = {}
    groups: dict[str, dict[str, set[str]]] = {}
    for split, ds in splits.items():
        for image in ds.images:
            split_of_file.setdefault(image.file_name, set()).add(split)
            if image.group:
                groups.setdefault(image.group, {}).setdefault(split, set()).add(image.file_name)
    leaks: list[Leak] = []
    for dup in duplicates:
        sides = set().union(*(split_of_file.get(f, set()) for f in dup.file_names))
        if len(sides) > 1:
            leaks.append(Leak(f"{dup.kind.value} duplicate", _ordered(sides), dup.file_names))
    for by_split in groups.values():
        if len(by_split) > 1:
            files = tuple(sorted(set().union(*by_split.values())))
            leaks.append(Leak("same group", _ordered(by_split), files))
    return leaks


def _ordered(splits: set[str] | Mapping[str, object]) -> tuple[str, ...]:
    return tuple(s for s in SPLIT_NAMES if s in splits)


def split_sha256(splits: Mapping[str, CocoDataset]) -> str:
    """Identity of the split itself: which files are in which split (lineage records it)."""
    digest = hashlib.sha256(b"raven-split-v1\n")
    for split in SPLIT_NAMES:
        for name in sorted(i.file_name for i in splits[split].images) if split in splits else ():
            digest.update(f"{split}\0{name}\n".encode())
    return digest.hexdigest()
