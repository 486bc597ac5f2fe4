"""The train split cut into tiles (``domain/tiling.py``), cached on the worker so a second run does not cut
again.

A cache entry is keyed by the dataset's snapshot, the train split's content (the run's classes and split
included), the tiling settings and the seed; it holds the tiles (PNG, cropped from the EXIF-oriented image
as mmcv decodes it) and the tiled split's COCO file. It is built in a private directory and renamed into
place, so a half-written entry is never used and two attempts building the same entry at once both end with
a whole one. The run's data directory gets a symlink to the entry's tiles beside its images, and a copy of
its COCO file: nothing the stored config names lies outside the attempt's work dir.

Blocking: runs in a worker thread.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
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


@dataclasses.dataclass(frozen=True)
class TiledTrain:
    prepared: PreparedDataset  # train_ann: the tiled split; val/test unchanged
    key: str
    cached: bool  # the entry existed: nothing was cut
    tiles: int
    empty_tiles: int


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


def tiled_train(prepared: PreparedDataset, tiling: Tiling, seed: int, cache_root: Path) -> TiledTrain:
    """``prepared`` with its train split replaced by the cached tiles (cut now when not cached yet)."""
    key = cache_key(prepared.snapshot_sha256, prepared.train_ann, tiling, seed)
    entry = cache_root / key
    cached = (entry / ENTRY_ANN).is_file()
    if not cached:
        _build_entry(prepared, tiling, seed, entry)
    link = prepared.image_root / LINK_NAME
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(entry.resolve() / TILES_DIR, target_is_directory=True)
    doc = json.loads((entry / ENTRY_ANN).read_text())
    run_ann = write_json(prepared.train_ann.parent / RUN_ANN, doc)
    with_boxes = {a["image_id"] for a in doc["annotations"]}
    counts = {**prepared.counts, "train_tiles": len(doc["images"])}
    return TiledTrain(
        dataclasses.replace(prepared, train_ann=run_ann, counts=counts), key, cached,
        len(doc["images"]), len(doc["images"]) - len(with_boxes),
    )  # fmt: skip


def _build_entry(prepared: PreparedDataset, tiling: Tiling, seed: int, entry: Path) -> None:
    source = _read_split(prepared.train_ann)
    tiled, tiles = cut_dataset(source, tiling, seed)
    private = entry.parent / f"{entry.name}.building-{os.getpid()}-{id(tiles)}"
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
    try:
        private.rename(entry)
    except OSError:  # another attempt finished the same entry first: keep theirs
        if not (entry / ENTRY_ANN).is_file():
            raise
        shutil.rmtree(private, ignore_errors=True)


def _read_split(path: Path) -> CocoDataset:
    problems = ProblemLog()
    parsed = parse_coco(json.loads(path.read_text()), path.name, problems)
    problems.raise_if_any("the prepared train split")
    assert parsed is not None
    return parsed
