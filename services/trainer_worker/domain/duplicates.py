"""Exact and near-duplicate images, and the union-find that keeps linked images in one split.

Exact duplicates share a sha256 of their bytes; near-duplicates have 64-bit perceptual hashes (``imagehash``'s
DCT ``phash``, computed by the adapter) within ``NEAR_DUPLICATE_BITS`` of each other. Consecutive frames of a
drone flight are near-duplicates; a random split that put them on both sides would validate on images it
trained on. Pure logic: callers pass the fingerprints.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

HASH_BITS = 64
NEAR_DUPLICATE_BITS = 4  # of 64: resaves, rescales and neighbouring frames; distinct scenes differ by ~32
# A perceptual hash thresholds DCT coefficients at their median, so a textured image sets about half its bits;
# a flat image (blank sky, black frame) sets almost none and would match every other flat image.
MIN_SET_BITS, MAX_SET_BITS = 8, HASH_BITS - 8

K = TypeVar("K", bound=Hashable)


class UnionFind(Generic[K]):
    """Disjoint sets with path halving and union by size."""

    def __init__(self, items: Iterable[K] = ()) -> None:
        self._parent: dict[K, K] = {}
        self._size: dict[K, int] = {}
        for item in items:
            self.add(item)

    def add(self, item: K) -> None:
        if item not in self._parent:
            self._parent[item] = item
            self._size[item] = 1

    def find(self, item: K) -> K:
        self.add(item)
        parent = self._parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def union(self, a: K, b: K) -> bool:
        """Join the sets of ``a`` and ``b``; True when they were apart."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size[rb]
        return True

    def groups(self) -> list[list[K]]:
        """Every set, members in insertion order, sets ordered by their first member."""
        by_root: dict[K, list[K]] = {}
        for item in self._parent:
            by_root.setdefault(self.find(item), []).append(item)
        return list(by_root.values())


class DuplicateKind(StrEnum):
    EXACT = "exact"  # byte-identical files
    NEAR = "near"  # perceptual hashes within NEAR_DUPLICATE_BITS


@dataclass(frozen=True)
class Fingerprint:
    file_name: str
    sha256: str
    phash: int | None  # None when the image could not be hashed (it is reported elsewhere)


@dataclass(frozen=True)
class DuplicateSet:
    """Files that are copies (exact) or near-copies (near, linked pairwise, possibly in a chain)."""

    kind: DuplicateKind
    file_names: tuple[str, ...]  # sorted
    max_distance: int = 0  # largest Hamming distance between the members' perceptual hashes


def find_duplicates(prints: Sequence[Fingerprint], max_bits: int = NEAR_DUPLICATE_BITS) -> list[DuplicateSet]:
    """Exact sets (same sha256) and near sets (connected by phash distance <= ``max_bits``, not all exact).

    Files are compared once each, by name; a near set lists the distinct files of its chain.
    """
    unique = {p.file_name: p for p in prints}
    by_sha: dict[str, list[str]] = defaultdict(list)
    for p in unique.values():
        by_sha[p.sha256].append(p.file_name)
    exact = [DuplicateSet(DuplicateKind.EXACT, tuple(sorted(n))) for n in by_sha.values() if len(n) > 1]
    # near duplicates among one representative per distinct content
    reps = {names[0]: unique[names[0]].phash for names in by_sha.values()}
    near_links = UnionFind(reps)
    for a, b in near_pairs({n: h for n, h in reps.items() if h is not None}, max_bits):
        near_links.union(a, b)
    near: list[DuplicateSet] = []
    for members in near_links.groups():
        if len(members) > 1:
            files = sorted(f for m in members for f in by_sha[unique[m].sha256])
            spread = _max_distance([h for m in members if (h := reps[m]) is not None])
            near.append(DuplicateSet(DuplicateKind.NEAR, tuple(files), spread))
    return sorted(exact + near, key=lambda d: (d.file_names[0], d.kind))


def _max_distance(hashes: Sequence[int], limit: int = 256) -> int:
    """Largest pairwise distance (over the first ``limit`` members: a long chain of frames is capped)."""
    head = hashes[:limit]
    return max(((a ^ b).bit_count() for i, a in enumerate(head) for b in head[i + 1 :]), default=0)


def near_pairs(hashes: Mapping[str, int], max_bits: int = NEAR_DUPLICATE_BITS) -> list[tuple[str, str]]:
    """Pairs of names whose hashes differ in at most ``max_bits`` bits (flat-image hashes excluded).

    Multi-index hashing: split each hash into ``max_bits + 1`` blocks; two hashes within ``max_bits`` agree
    exactly on at least one block, so only names sharing a block value are compared.
    """
    if not 0 <= max_bits < HASH_BITS // 2:
        raise ValueError(f"max_bits must be in [0, {HASH_BITS // 2}), got {max_bits}")
    blocks = max_bits + 1
    edges = [round(i * HASH_BITS / blocks) for i in range(blocks + 1)]
    usable = {n: h for n, h in hashes.items() if MIN_SET_BITS <= h.bit_count() <= MAX_SET_BITS}
    buckets: dict[tuple[int, int], list[str]] = defaultdict(list)
    for name, value in usable.items():
        for b in range(blocks):
            width = edges[b + 1] - edges[b]
            buckets[(b, (value >> edges[b]) & ((1 << width) - 1))].append(name)
    pairs: set[tuple[str, str]] = set()
    for names in buckets.values():
        for i, a in enumerate(names):
            ha = usable[a]
            for other in names[i + 1 :]:
                if (ha ^ usable[other]).bit_count() <= max_bits:
                    pairs.add((a, other) if a < other else (other, a))
    return sorted(pairs)
