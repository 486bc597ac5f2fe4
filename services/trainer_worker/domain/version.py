"""A dataset version's split, decided once from its validated content: the use case's pure core.

``split_version`` takes what validation yielded (one ``CocoDataset`` per annotation file), the images'
fingerprints, the snapshot hash and the version's split options, and returns the split with its duplicate
sets, leaks and manifest. The rules are in ``version_split.py`` (grouping, stratification, leaks) and
``duplicates.py``.

For a computed split, duplicates are *found* on the split the groups alone would give (what a split without
the check would have done) and *moved* by joining their groups before the real split is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from common.dataset_layout import SPLIT_NAMES, UNSPLIT
from services.trainer_worker.domain.coco import CocoDataset
from services.trainer_worker.domain.duplicates import DuplicateSet, Fingerprint, find_duplicates
from services.trainer_worker.domain.split import SplitFractions, split_manifest
from services.trainer_worker.domain.version_split import (
    Leak,
    find_leaks,
    group_key,
    grouped_split,
    grouping_rule,
    split_seed,
    split_sha256,
    split_units,
)

SPLIT_MANIFEST_VERSION = 2  # 1: the per-run seeded split of split.split_manifest


@dataclass(frozen=True)
class DuplicateReport:
    """One duplicate set and where its files were: as first assigned (or given), and where they ended."""

    duplicates: DuplicateSet
    splits: tuple[str, ...]  # per file of duplicates.file_names
    resolved_split: str  # "" when only reported (a kept split)


@dataclass(frozen=True)
class VersionSplit:
    splits: dict[str, CocoDataset]
    given: bool  # the dataset carried its split (kept, only checked)
    grouping: str  # "group", "sequence", "video_id", "directory" or "image"
    groups: dict[str, int]  # split -> groups of images kept together
    seed: int
    fractions: SplitFractions
    duplicates: tuple[DuplicateReport, ...]
    leaks: tuple[Leak, ...]  # in the split as first assigned (computed) or as given (kept)
    leaked_images: int  # images with a duplicate in another split, before moving
    moved_images: int  # of those, moved into one split (0 for a kept split)
    split_sha256: str

    def manifest(self, class_names: Sequence[str], snapshot_sha256: str) -> dict[str, object]:
        manifest = split_manifest(
            self.splits,
            seed=self.seed,
            fractions=self.fractions,
            given=self.given,
            class_names=class_names,
            snapshot_sha256=snapshot_sha256,
        )
        manifest.update(
            manifest_version=SPLIT_MANIFEST_VERSION,
            seed_source="snapshot_sha256",
            grouping=self.grouping,
            split_sha256=self.split_sha256,
            leaks=[
                {"reason": k.reason, "splits": list(k.splits), "file_names": list(k.file_names)}
                for k in self.leaks
            ],
        )
        return manifest


def split_version(
    datasets: Mapping[str, CocoDataset],
    prints: Sequence[Fingerprint],
    snapshot_sha256: str,
    fractions: SplitFractions,
    option_seed: int = 0,
) -> VersionSplit:
    """Keep and check the dataset's own split, or compute the grouped one from ``datasets[UNSPLIT]``.

    Raises:
        DatasetInvalid: the groups are too few to split.
    """
    seed = split_seed(snapshot_sha256, option_seed)
    duplicates = find_duplicates(prints)
    if UNSPLIT not in datasets:
        splits = dict(datasets)
        rule = grouping_rule([i for ds in splits.values() for i in ds.images], len(splits))
        before = splits
        resolved: dict[str, str] = {}
    else:
        ds = datasets[UNSPLIT]
        rule = grouping_rule(ds.images, sum(1 for v in fractions.as_dict().values() if v > 0))
        before = _apply(ds, grouped_split(ds, split_units(ds, [], rule), fractions, seed).as_dict())
        splits = _apply(ds, grouped_split(ds, split_units(ds, duplicates, rule), fractions, seed).as_dict())
        resolved = _split_of_file(splits)
    first = _split_of_file(before)
    leaks = find_leaks(before, duplicates)
    leaked = {f for k in leaks if k.reason != "same group" for f in k.file_names}
    reports = tuple(
        DuplicateReport(d, tuple(first.get(f, "") for f in d.file_names), resolved.get(d.file_names[0], ""))
        for d in duplicates
    )
    groups = {s: len({group_key(i, rule) for i in splits[s].images}) for s in SPLIT_NAMES if s in splits}
    return VersionSplit(
        splits, UNSPLIT not in datasets, rule, groups, seed, fractions, reports, tuple(leaks),
        len(leaked), len(leaked) if resolved else 0, split_sha256(splits),
    )  # fmt: skip


def _apply(ds: CocoDataset, assignment: Mapping[str, Sequence[int]]) -> dict[str, CocoDataset]:
    return {s: ds.subset(assignment[s]) for s in SPLIT_NAMES}


def _split_of_file(splits: Mapping[str, CocoDataset]) -> dict[str, str]:
    return {i.file_name: s for s, ds in splits.items() for i in ds.images}
