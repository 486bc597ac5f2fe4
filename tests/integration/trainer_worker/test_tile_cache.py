"""The worker's dataset step with tiling: the train split is cut into tiles once per (dataset, tiling, seed)
and reused by the next run; val and test stay full images. Real images on disk, real preparation."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from common.proto.raven.v1 import events_pb2, types_pb2
from common.tiling import Tiling
from services.trainer_worker.adapters.dataset_source import prepare_dataset
from services.trainer_worker.adapters.tile_cache import LAST_USED, LINK_NAME, USERS_DIR, tiled_train
from services.trainer_worker.service_layer.steps import JobSteps
from tests.fixtures.tiny_objects import make_tiny_object_dataset

SIDE = 400


def dataset(root: Path) -> Path:
    return make_tiny_object_dataset(root / "datasets" / "tiny", n_images=6, size=SIDE, objects=(3, 6), seed=4,
                                    split=(1, 1))  # fmt: skip


def test_tiles_are_cut_once_and_their_boxes_match_the_pixels(tmp_path: Path) -> None:
    dataset(tmp_path)
    prepared = prepare_dataset(f"file://{tmp_path / 'datasets'}", "tiny", tmp_path / "run1", seed=0)
    tiling = Tiling(160, 32, 0.5)
    first = tiled_train(prepared, tiling, 0, tmp_path / "cache")
    assert not first.cached and first.tiles > 0 and first.empty_tiles <= 0.2 * first.tiles
    doc = json.loads(first.prepared.train_ann.read_text())
    assert first.prepared.train_ann.parent == prepared.train_ann.parent  # in the run's data dir
    assert first.prepared.val_ann == prepared.val_ann and first.prepared.test_ann == prepared.test_ann
    source = json.loads(prepared.train_ann.read_text())
    for image in doc["images"]:
        assert image["file_name"].startswith(f"{LINK_NAME}/")
        with Image.open(prepared.image_root / image["file_name"]) as tile:
            assert tile.size == (image["width"], image["height"]) == (160, 160)
    # every source box whole inside some tile is in that tile, at the tile's coordinates, with its pixels
    assert len(doc["annotations"]) >= len(source["annotations"])
    shown = next(a for a in doc["annotations"] if a["category_id"] == 1)  # a bottle: a solid blue rectangle
    tile_of = {i["id"]: i for i in doc["images"]}[shown["image_id"]]
    x, y, w, h = (int(v) for v in shown["bbox"])
    with Image.open(prepared.image_root / tile_of["file_name"]) as tile:
        inside = tile.convert("RGB").getpixel((x + w // 2, y + h // 2))
    ground = (120, 105, 80)
    assert sum(abs(a - b) for a, b in zip(inside, ground, strict=True)) > 60  # an object's colour, not ground

    entry = next((tmp_path / "cache").iterdir())

    def stamps() -> dict[Path, int]:  # the entry's files, less the use bookkeeping (its users, last use)
        skip = (entry / USERS_DIR, entry / LAST_USED)
        return {p: p.stat().st_mtime_ns for p in entry.rglob("*") if not p.is_relative_to(skip[0])
                and p not in skip}  # fmt: skip

    before = stamps()
    again = prepare_dataset(f"file://{tmp_path / 'datasets'}", "tiny", tmp_path / "run2", seed=0)
    second = tiled_train(again, tiling, 0, tmp_path / "cache")
    assert second.cached and second.key == first.key
    assert stamps() == before  # nothing cut or written again
    assert json.loads(second.prepared.train_ann.read_text()) == doc
    other = tiled_train(again, Tiling(160, 0, 0.5), 0, tmp_path / "cache")
    assert not other.cached and other.key != first.key and len(list((tmp_path / "cache").iterdir())) == 2


async def test_the_dataset_step_tiles_the_train_split_of_a_tiled_job(tmp_path: Path) -> None:
    dataset(tmp_path)
    steps = JobSteps(artifacts=None, dataset_root=f"file://{tmp_path / 'datasets'}",  # type: ignore[arg-type]
                     tile_cache=tmp_path / "cache")  # fmt: skip
    hp = types_pb2.Hyperparameters(
        seed=0, tiling=types_pb2.Tiling(tile_size=200, overlap=40, min_box_visibility=0.5)
    )
    job = events_pb2.TrainingJob(run_id="r1", attempt=1, dataset="tiny", hyperparameters=hp)
    prepared = await steps.prepare(job, tmp_path / "r1" / "data")
    train = json.loads(prepared.train_ann.read_text())
    assert prepared.train_ann.name == "train_tiles.json" and {
        (i["width"], i["height"]) for i in train["images"]
    } == {(200, 200)}
    assert prepared.counts["train_tiles"] == len(train["images"])
    test = json.loads(prepared.test_ann.read_text())  # type: ignore[union-attr]
    assert {(i["width"], i["height"]) for i in test["images"]} == {(SIDE, SIDE)}  # full images
    plain = await steps.prepare(
        events_pb2.TrainingJob(run_id="r2", attempt=1, dataset="tiny"), tmp_path / "r2"
    )
    assert plain.train_ann.name == "train.json"
    assert len(list((tmp_path / "cache").iterdir())) == 1
