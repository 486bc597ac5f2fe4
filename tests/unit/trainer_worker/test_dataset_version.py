"""A dataset version's split: grouped, stratified by class and box size, seeded by the snapshot, duplicates
joined, a carried split kept with its leaks reported."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.dataset_layout import SPLIT_NAMES, UNSPLIT
from services.trainer_worker.domain.coco import Annotation, Category, CocoDataset, ImageRecord
from services.trainer_worker.domain.duplicates import (
    DuplicateKind,
    DuplicateSet,
    Fingerprint,
    UnionFind,
    find_duplicates,
    near_pairs,
)
from services.trainer_worker.domain.problems import DatasetInvalid, Problem
from services.trainer_worker.domain.profile import size_bin
from services.trainer_worker.domain.split import SplitFractions
from services.trainer_worker.domain.version import split_version
from services.trainer_worker.domain.version_split import (
    grouped_split,
    grouping_rule,
    split_seed,
    split_units,
)

SNAPSHOT = "ab" * 32
SIDES = (4.0, 12.0, 24.0, 48.0, 96.0, 200.0)  # one per size bin


def build(images: list[tuple[str, str, list[tuple[int, float]]]], n_classes: int = 3) -> CocoDataset:
    """(file_name, group, [(category, box side)]) per image, ids 1..N in the given order."""
    records, anns = [], []
    for image_id, (name, group, boxes) in enumerate(images, start=1):
        records.append(ImageRecord(image_id, name, 512, 512, group))
        for cat, side in boxes:
            anns.append(Annotation(len(anns) + 1, image_id, cat, (0.0, 0.0, side, side), side * side, 0))
    cats = tuple(Category(c, f"c{c}") for c in range(1, n_classes + 1))
    return CocoDataset(cats, tuple(records), tuple(anns))


def flights(n_groups: int, seed: int = 0) -> CocoDataset:
    """Flights of 1-12 frames; each flight mostly one class and one box size, as surveys are."""
    rng = random.Random(seed)
    images = []
    for g in range(n_groups):
        cls, side = rng.choice([1, 1, 1, 2, 2, 3]), rng.choice(SIDES)
        for f in range(rng.randint(1, 12)):
            boxes = [(cls, side)] * rng.randint(0, 3) + [(rng.randint(1, 3), rng.choice(SIDES))]
            images.append((f"flights/{g}/{f}.jpg", f"sequence:{g}", boxes))
    return build(images)


def group_of(ds: CocoDataset) -> dict[int, str]:
    return {i.id: i.group for i in ds.images}


def test_groups_never_straddle_and_split_is_a_partition() -> None:
    ds = flights(120)
    assignment = grouped_split(ds, split_units(ds, [], "field"), SplitFractions(), seed=1)
    groups = group_of(ds)
    sides: dict[str, set[str]] = {}
    for split, ids in assignment.as_dict().items():
        for i in ids:
            sides.setdefault(groups[i], set()).add(split)
    assert all(len(s) == 1 for s in sides.values())
    all_ids = [i for ids in assignment.as_dict().values() for i in ids]
    assert sorted(all_ids) == [i.id for i in ds.images]


def test_stratified_by_class_and_box_size_close_to_the_fractions() -> None:
    ds = flights(300, seed=4)
    assignment = grouped_split(ds, split_units(ds, [], "field"), SplitFractions(), seed=2).as_dict()
    split_of = {i: s for s, ids in assignment.items() for i in ids}
    n = len(ds.images)
    for split, frac in SplitFractions().as_dict().items():
        assert abs(len(assignment[split]) / n - frac) < 0.05, (split, len(assignment[split]))
    by_class = Counter((a.category_id, split_of[a.image_id]) for a in ds.annotations)
    by_size = Counter((size_bin(a.bbox[2]), split_of[a.image_id]) for a in ds.annotations)
    for counts in (by_class, by_size):
        for key in {k for k, _ in counts}:
            total = sum(counts[(key, s)] for s in SPLIT_NAMES)
            for split, frac in SplitFractions().as_dict().items():
                assert abs(counts[(key, split)] / total - frac) < 0.05, (key, split, counts)


def test_seeded_by_the_snapshot_whatever_the_listing_order() -> None:
    ds = flights(60)
    reordered = CocoDataset(ds.categories, tuple(reversed(ds.images)), tuple(reversed(ds.annotations)))
    first = split_version({UNSPLIT: ds}, [], SNAPSHOT, SplitFractions())
    again = split_version({UNSPLIT: reordered}, [], SNAPSHOT, SplitFractions())
    other = split_version({UNSPLIT: ds}, [], "cd" * 32, SplitFractions())
    assert again.split_sha256 == first.split_sha256 and first.seed == split_seed(SNAPSHOT)
    assert other.split_sha256 != first.split_sha256
    manifest = first.manifest(["c1", "c2", "c3"], SNAPSHOT)
    assert manifest["seed_source"] == "snapshot_sha256" and manifest["grouping"] == "sequence"
    assert sorted(manifest["train"] + manifest["val"] + manifest["test"]) == [i.id for i in ds.images]  # type: ignore[operator]


def test_grouping_falls_back_to_directories_then_to_images() -> None:
    by_dir = build([(f"d{k % 5}/{k}.jpg", "", [(1, 10.0)]) for k in range(40)], n_classes=1)
    assert grouping_rule(by_dir.images, 3) == "directory"
    units = split_units(by_dir, [], "directory")
    assert len(units) == 5 and all(len(u) == 8 for u in units)
    flat = build([(f"images/{k}.jpg", "", [(1, 10.0)]) for k in range(40)], n_classes=1)
    assert grouping_rule(flat.images, 3) == "image" and len(split_units(flat, [], "image")) == 40


def test_duplicates_join_their_groups_into_one_split() -> None:
    ds = flights(80, seed=9)
    names = {i.id: i.file_name for i in ds.images}
    first_of = {}
    for i in ds.images:
        first_of.setdefault(i.group, i.file_name)
    # chain flights 0-1-2 by near duplicates, 3-4 by an exact copy
    linked = [
        DuplicateSet(
            DuplicateKind.NEAR, (first_of["sequence:0"], first_of["sequence:1"], first_of["sequence:2"])
        ),
        DuplicateSet(DuplicateKind.EXACT, (first_of["sequence:3"], first_of["sequence:4"])),
    ]
    result = split_version({UNSPLIT: ds}, [], SNAPSHOT, SplitFractions())
    assert result.duplicates == ()
    units = split_units(ds, linked, "field")
    for seqs in (("sequence:0", "sequence:1", "sequence:2"), ("sequence:3", "sequence:4")):
        members = {i.id for i in ds.images if i.group in seqs}
        assert any(members == set(u) for u in units)
    assignment = grouped_split(ds, units, SplitFractions(), seed=5).as_dict()
    split_of = {names[i]: s for s, ids in assignment.items() for i in ids}
    for dup in linked:
        for seq_files in dup.file_names:
            group = next(i.group for i in ds.images if i.file_name == seq_files)
            assert {split_of[i.file_name] for i in ds.images if i.group == group} == {
                split_of[dup.file_names[0]]
            }


def test_too_few_groups_is_invalid_with_a_reason() -> None:
    ds = build([(f"a/{k}.jpg", "flight:1", [(1, 10.0)]) for k in range(10)], n_classes=1)
    with pytest.raises(DatasetInvalid) as err:
        split_version({UNSPLIT: ds}, [], SNAPSHOT, SplitFractions())
    assert err.value.kinds == (Problem.SPLIT_TOO_SMALL,) and "1 group(s)" in err.value.message


def test_a_carried_split_is_kept_and_its_leaks_reported() -> None:
    train = build([("t/1.jpg", "flight:a", [(1, 10.0)]), ("t/2.jpg", "", [(1, 10.0)])], n_classes=1)
    val = build([("v/1.jpg", "flight:a", [(1, 10.0)]), ("v/2.jpg", "", [(1, 10.0)])], n_classes=1)
    prints = [
        Fingerprint("t/1.jpg", "s1", 0x0F0F_0F0F_0F0F_0F0F),
        Fingerprint("t/2.jpg", "same", 0x00FF_00FF_00FF_00FF),
        Fingerprint("v/1.jpg", "s3", 0x0F0F_0F0F_0F0F_0F0E),  # near t/1 (1 bit)
        Fingerprint("v/2.jpg", "same", 0x00FF_00FF_00FF_00FF),  # exact copy of t/2
    ]
    result = split_version({"train": train, "val": val}, prints, SNAPSHOT, SplitFractions())
    assert result.given and result.splits["train"] is train and result.splits["val"] is val
    leaks = {(k.reason, k.file_names, k.splits) for k in result.leaks}
    assert leaks == {
        ("exact duplicate", ("t/2.jpg", "v/2.jpg"), ("train", "val")),
        ("near duplicate", ("t/1.jpg", "v/1.jpg"), ("train", "val")),
        ("same group", ("t/1.jpg", "v/1.jpg"), ("train", "val")),
    }
    assert result.manifest(["c1"], SNAPSHOT)["leaks"]


def test_find_duplicates_exact_and_near_chains_but_not_flat_images() -> None:
    base = 0x5A5A_5A5A_5A5A_5A5A
    prints = [
        Fingerprint("a.jpg", "h1", base),
        Fingerprint("b.jpg", "h1", base),  # exact copy of a
        Fingerprint("c.jpg", "h2", base ^ 0b111),  # 3 bits from a
        Fingerprint("d.jpg", "h3", base ^ 0b111 ^ (0b111 << 20)),  # 3 from c, 6 from a: chained
        Fingerprint("e.jpg", "h4", ~base & (2**64 - 1)),  # far from everything
        Fingerprint("f.jpg", "h5", 0x1),  # flat images: hashes nearly empty, never matched
        Fingerprint("g.jpg", "h6", 0x3),
        Fingerprint("h.jpg", "h7", None),
    ]
    found = find_duplicates(prints)
    assert found == [
        DuplicateSet(DuplicateKind.EXACT, ("a.jpg", "b.jpg")),
        DuplicateSet(DuplicateKind.NEAR, ("a.jpg", "b.jpg", "c.jpg", "d.jpg"), 6),
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=2, max_size=40),
    st.integers(0, 2**32),
    st.integers(0, 6),
)
def test_near_pairs_match_brute_force(seeds: list[int], salt: int, max_bits: int) -> None:
    rng = random.Random(salt)
    hashes: dict[str, int] = {}
    for n, value in enumerate(seeds):
        if n % 2 and hashes:  # half are small perturbations of an earlier hash
            value = rng.choice(list(hashes.values()))
            for _ in range(rng.randint(0, 8)):
                value ^= 1 << rng.randrange(64)
        hashes[f"{n}.jpg"] = value
    usable = {k: v for k, v in hashes.items() if 8 <= v.bit_count() <= 56}
    expected = sorted(
        (a, b) for a in usable for b in usable if a < b and (usable[a] ^ usable[b]).bit_count() <= max_bits
    )
    assert near_pairs(hashes, max_bits) == expected


def test_union_find_groups() -> None:
    uf: UnionFind[int] = UnionFind(range(6))
    assert uf.union(0, 3) and uf.union(3, 5) and not uf.union(5, 0)
    assert sorted(sorted(g) for g in uf.groups()) == [[0, 3, 5], [1], [2], [4]]


def test_group_fields_are_parsed_and_a_malformed_one_reported() -> None:
    from services.trainer_worker.domain.coco import parse_coco
    from services.trainer_worker.domain.problems import ProblemLog

    images = [
        {"id": 1, "file_name": "a.jpg", "width": 8, "height": 8, "sequence": 3},
        {"id": 2, "file_name": "b.jpg", "width": 8, "height": 8, "video_id": "v1", "group": ""},
        {"id": 3, "file_name": "c.jpg", "width": 8, "height": 8},
        {"id": 4, "file_name": "d.jpg", "width": 8, "height": 8, "group": {"x": 1}},
    ]
    doc = {"images": images, "annotations": [], "categories": [{"id": 1, "name": "a"}]}
    problems = ProblemLog()
    ds = parse_coco(doc, "annotations.json", problems)
    assert ds is not None and [i.group for i in ds.images] == ["sequence:3", "video_id:v1", ""]
    with pytest.raises(DatasetInvalid) as err:
        problems.raise_if_any("dataset 'd'")
    assert (
        "annotations.json: image id 4 (d.jpg): group/sequence/video_id must be a string or an integer"
        in err.value.details
    )


def test_computed_split_reports_the_duplicates_it_moved() -> None:
    ds = flights(60, seed=3)
    first_frame: dict[str, str] = {}
    for image in ds.images:
        first_frame.setdefault(image.group, image.file_name)
    base = 0x5A5A_5A5A_5A5A_5A5A
    prints = [Fingerprint(i.file_name, f"sha-{i.id}", None) for i in ds.images]
    # the first frame of every flight is a near copy of flight 0's: a chain across all flights would be
    # too much, so only flights 0..9 are linked
    linked = [first_frame[f"sequence:{g}"] for g in range(10)]
    prints = [
        Fingerprint(p.file_name, p.sha256, base ^ (1 << n) if p.file_name in linked else None)
        for n, p in enumerate(prints)
    ]
    result = split_version({UNSPLIT: ds}, prints, SNAPSHOT, SplitFractions())
    (report,) = result.duplicates
    assert report.duplicates.file_names == tuple(sorted(linked)) and report.duplicates.max_distance == 2
    assert len(set(report.splits)) > 1  # the groups alone put them on more than one side ...
    assert result.leaked_images > 0 and result.moved_images == result.leaked_images
    final = {i.file_name: s for s, part in result.splits.items() for i in part.images}
    assert {final[f] for f in linked} == {report.resolved_split}  # ... the version keeps them together
    flights_of = {i.group for i in ds.images if i.file_name in linked}
    assert len({final[i.file_name] for i in ds.images if i.group in flights_of}) == 1
