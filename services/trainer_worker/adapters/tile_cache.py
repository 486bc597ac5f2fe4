"""The train split cut into tiles (``domain/tiling.py``), cached on the worker so a second run does not cut
again.

A cache entry is keyed by the dataset's snapshot, the train split's content (the run's classes and split
included), the tiling settings and the seed; it holds the tiles (PNG, cropped from the EXIF-oriented image
as mmcv decodes it) and the tiled split's COCO file. It is built in a private directory and renamed into
place, so a half-written entry is never used and two attempts building the same entry at once both end with
a whole one. The run's data directory gets a symlink to the entry's tiles beside its images, and a copy of
its COCO file: nothing the stored config names lies outside the attempt's work dir.

The cache is bounded (``RAVEN_TILE_CACHE_MAX_BYTES``, 0 = unbounded): after each use the least recently used
entries (each use touches the entry's ``.last-used``) are deleted until the cache fits, except entries in use.
An entry is in use while a run's tiles link points at it: each use leaves a link back to that run's tiles
link in the entry's ``.users``, and once the run's scratch is removed (or the link points elsewhere) the
back link is stale. An entry in use, or the one just used, stays even when the cache is over the bound.
Entries are looked up, published, used and evicted under one lock file (``flock``) beside the cache.

Blocking: runs in a worker thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from PIL import Image, ImageOps

from common.proto.raven.v1 import types_pb2
from common.tiling import FLAT_PREFIX, Tiling, from_flat
from services.trainer_worker.adapters.dataset_source import IO_THREADS, write_json
from services.trainer_worker.domain.coco import CocoDataset, parse_coco
from services.trainer_worker.domain.dataset import PreparedDataset
from services.trainer_worker.domain.problems import ProblemLog
from services.trainer_worker.domain.tiling import MAX_EMPTY_SHARE, TILES_DIR, Tile, cut_dataset

TILE_CACHE_DIR = ".tile-cache"  # under the worker's work dir, beside the runs' scratch
CUT_VERSION = 1  # part of the key: a change in how tiles are cut makes older entries unused
LINK_NAME = ".raven-tiles"  # beside the run's images; the tiled split's file names start with it
ENTRY_ANN = "train.json"
RUN_ANN = "train_tiles.json"
USERS_DIR = ".users"  # in an entry: one link per run using it, to that run's tiles link
LAST_USED = ".last-used"  # in an entry: touched at each use (LRU eviction order)
LOCK_SUFFIX = ".lock"  # the lock file beside the cache directory: ``.tile-cache.lock``
BUILDING = ".building-"  # in the name of an entry being built
SIZE = ".size"  # in an entry: its bytes, written once when it is built (eviction reads it, walks nothing)
STALE_BUILD_SECONDS = 6 * 3600  # an entry still being built after this was left by a crashed attempt


@dataclasses.dataclass(frozen=True)
class TiledTrain:
    prepared: PreparedDataset  # train_ann: the tiled split; val/test unchanged
    key: str
    cached: bool  # the entry existed: nothing was cut
    tiles: int
    empty_tiles: int
    evicted: tuple[str, ...] = ()  # entries deleted to keep the cache within its bound


def tiling_of(hp: types_pb2.Hyperparameters) -> Tiling | None:
    """The job's tiling (its defaults filled in at Create), None when off."""
    if not hp.HasField("tiling") or hp.tiling.tile_size <= 0:
        return None
    return from_flat({FLAT_PREFIX + d.name: v for d, v in hp.tiling.ListFields()})


def cache_key(snapshot_sha256: str, train_ann: Path, tiling: Tiling, seed: int) -> str:
    train = hashlib.sha256(train_ann.read_bytes()).hexdigest()
    parts = {"cut": CUT_VERSION, "snapshot": snapshot_sha256, "train": train, "tiling": tiling.as_dict(),
             "seed": seed, "max_empty_share": MAX_EMPTY_SHARE}  # fmt: skip
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def tiled_train(
    prepared: PreparedDataset, tiling: Tiling, seed: int, cache_root: Path, max_bytes: int = 0
) -> TiledTrain:
    """``prepared`` with its train split replaced by the cached tiles (cut now when not cached yet); then
    the cache is trimmed to ``max_bytes`` (0 = unbounded)."""
    key = cache_key(prepared.snapshot_sha256, prepared.train_ann, tiling, seed)
    entry = cache_root / key
    link = prepared.image_root / LINK_NAME
    cache_root.mkdir(parents=True, exist_ok=True)
    with locked(cache_root):
        cached = (entry / ENTRY_ANN).is_file()
        if cached:
            _use(entry, link)
    if not cached:
        private = _build_entry(prepared, tiling, seed, entry)  # long: outside the lock
        with locked(cache_root):
            _publish(private, entry)
            _use(entry, link)
    evicted = tuple(evict(cache_root, max_bytes)) if max_bytes > 0 else ()
    doc = json.loads((entry / ENTRY_ANN).read_text())
    run_ann = write_json(prepared.train_ann.parent / RUN_ANN, doc)
    with_boxes = {a["image_id"] for a in doc["annotations"]}
    counts = {**prepared.counts, "train_tiles": len(doc["images"])}
    return TiledTrain(
        dataclasses.replace(prepared, train_ann=run_ann, counts=counts), key, cached,
        len(doc["images"]), len(doc["images"]) - len(with_boxes), evicted,
    )  # fmt: skip


@contextlib.contextmanager
def locked(cache_root: Path) -> Iterator[None]:
    """The cache's lock (``flock``: held per open file, so also between threads of one process)."""
    with open(cache_root.with_name(cache_root.name + LOCK_SUFFIX), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def evict(cache_root: Path, max_bytes: int) -> list[str]:
    """Deletes the least recently used entries not in use until the cache holds at most ``max_bytes``;
    returns the deleted entries' keys, oldest first. Entries being built are not counted; ones a crashed
    attempt left (untouched for ``STALE_BUILD_SECONDS``) are deleted."""
    removed: list[str] = []
    with locked(cache_root):
        stale = time.time() - STALE_BUILD_SECONDS
        for path in cache_root.iterdir():
            if BUILDING in path.name and not path.is_symlink() and path.stat().st_mtime < stale:
                shutil.rmtree(path, ignore_errors=True)
        entries = [p for p in cache_root.iterdir() if _is_entry(p)]
        sizes = {p: _size(p) for p in entries}
        total = sum(sizes.values())
        for entry in sorted(entries, key=_last_used):
            if total <= max_bytes:
                break
            if in_use(entry):
                continue
            shutil.rmtree(entry, ignore_errors=True)
            total -= sizes[entry]
            removed.append(entry.name)
    return removed


def in_use(entry: Path) -> bool:
    """A run's tiles link still points at this entry (stale back links are removed on the way)."""
    tiles = os.path.realpath(entry / TILES_DIR)
    users = entry / USERS_DIR
    found = False
    for back in list(users.iterdir()) if users.is_dir() else []:
        target = Path(os.readlink(back)) if back.is_symlink() else None
        if target is not None and target.is_symlink() and os.path.realpath(target) == tiles:
            found = True
        else:
            back.unlink(missing_ok=True)
    return found


def _use(entry: Path, link: Path) -> None:
    """Under the lock: the run's tiles link to the entry, its back link, the entry's use time."""
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(entry.resolve() / TILES_DIR, target_is_directory=True)
    users = entry / USERS_DIR
    users.mkdir(exist_ok=True)
    back = users / hashlib.sha256(str(link.absolute()).encode()).hexdigest()[:32]
    back.unlink(missing_ok=True)
    back.symlink_to(link.absolute())
    (entry / LAST_USED).touch()


def _publish(private: Path, entry: Path) -> None:
    """Under the lock: the built entry renamed into place, unless another attempt finished it first."""
    try:
        private.rename(entry)
    except OSError:  # another attempt finished the same entry first: keep theirs
        if not (entry / ENTRY_ANN).is_file():
            raise
        shutil.rmtree(private, ignore_errors=True)


def _is_entry(path: Path) -> bool:
    return BUILDING not in path.name and not path.is_symlink() and (path / ENTRY_ANN).is_file()


def _last_used(entry: Path) -> float:
    marker = entry / LAST_USED
    return (marker if marker.exists() else entry).stat().st_mtime


def _size(entry: Path) -> int:
    """The entry's bytes: its ``.size``, else (an entry from before it was written) counted once and kept."""
    try:
        return int((entry / SIZE).read_text())
    except (OSError, ValueError):
        total = _count_bytes(entry)
    (entry / SIZE).write_text(str(total))
    return total


def _count_bytes(entry: Path) -> int:
    """Bytes of the entry's regular files (links not followed)."""
    total = 0
    for folder, _dirs, files in os.walk(entry):
        for name in files:
            info = os.lstat(os.path.join(folder, name))
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return total


def _build_entry(prepared: PreparedDataset, tiling: Tiling, seed: int, entry: Path) -> Path:
    """Cuts the tiles into a private directory beside ``entry``; returns it (published by the caller)."""
    source = _read_split(prepared.train_ann)
    tiled, tiles = cut_dataset(source, tiling, seed)
    private = entry.parent / f"{entry.name}{BUILDING}{os.getpid()}-{id(tiles)}"
    shutil.rmtree(private, ignore_errors=True)
    (private / TILES_DIR).mkdir(parents=True)
    by_source: dict[int, list[Tile]] = {}
    for tile in tiles:
        by_source.setdefault(tile.source.id, []).append(tile)

    def crop(items: list[Tile]) -> None:
        with Image.open(prepared.image_root / items[0].source.file_name) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        for tile in items:
            w = tile.window
            image.crop((w.x, w.y, w.x + w.width, w.y + w.height)).save(private / tile.file_name)

    with ThreadPoolExecutor(IO_THREADS, thread_name_prefix="tile-cut") as pool:
        list(pool.map(crop, by_source.values()))
    doc = tiled.to_coco()
    for image in cast(list[dict[str, Any]], doc["images"]):
        image["file_name"] = f"{LINK_NAME}/{Path(image['file_name']).relative_to(TILES_DIR)}"
    write_json(private / ENTRY_ANN, doc)
    (private / SIZE).write_text(str(_count_bytes(private)))
    return private


def _read_split(path: Path) -> CocoDataset:
    problems = ProblemLog()
    parsed = parse_coco(json.loads(path.read_text()), path.name, problems)
    problems.raise_if_any("the prepared train split")
    assert parsed is not None
    return parsed
