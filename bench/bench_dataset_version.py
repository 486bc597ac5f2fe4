"""Dataset version preparation: N images / M boxes from the artifact store (verify, decode, perceptual hash,
validate, grouped split, profile, store), with the machine's own limits measured beside it in the same run.

    .venv/bin/python bench/bench_dataset_version.py [--images 10000] [--boxes-per-image 10] [--frames 10]

Images are small distinct JPEGs (64 px scenes, flights of ``--frames`` noisy frames: near-duplicates inside
a flight), every 50th flight repeats a frame of another flight (a cross-group exact duplicate). Limits, on
the same stored files and the same thread count: reading + sha256 alone, Pillow decoding (full, and in the
JPEG draft mode the preparation uses) with nothing else, and draft decoding + ``imagehash.phash`` (the
library floor of what the preparation must do per image). Files are freshly written: page cache warm.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.artifacts import ArtifactStore
from services.trainer_worker.adapters.version_preparation import (
    IO_BATCH,
    IO_THREADS,
    VersionSpec,
    prepare_version,
)
from services.trainer_worker.domain.split import SplitFractions
from tests.fixtures.dataset_versions import store_version

SIZE = 64
CLASSES = ("bottle", "tire", "bag", "plastic", "rubble", "wood", "metal", "glass")


def generate(directory: Path, n_images: int, boxes_per_image: int, frames: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    previous: bytes = b""
    for image_id in range(1, n_images + 1):
        flight, k = divmod(image_id - 1, frames)
        if k == 0:
            scene = np.kron(rng.integers(0, 255, (8, 8, 3)).astype(np.float64), np.ones((8, 8, 1)))
        pixels = np.clip(scene + rng.normal(0, 3, scene.shape), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=90)
        data = previous if (k == 0 and flight % 50 == 49) else out.getvalue()
        previous = data
        name = f"flights/{flight:05d}/{k:03d}.jpg"
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
        images.append({"id": image_id, "file_name": name, "width": SIZE, "height": SIZE, "sequence": flight})
        for _ in range(boxes_per_image):
            x, y = pick.uniform(0, SIZE - 20), pick.uniform(0, SIZE - 20)
            w, h = pick.uniform(3, 19), pick.uniform(3, 19)
            category = 1 + min(int(pick.expovariate(0.6)), len(CLASSES) - 1)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [x, y, w, h],
                }
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(CLASSES)]
    doc = {"images": images, "annotations": annotations, "categories": categories}
    (directory / "annotations.json").write_text(json.dumps(doc))
    return len(annotations)


def pooled(keys: list[str], work: Callable[[str], object]) -> float:
    """Seconds to run ``work`` over ``keys`` with the preparation's pool shape."""
    batches = [keys[i : i + IO_BATCH] for i in range(0, len(keys), IO_BATCH)]
    start = time.perf_counter()
    with ThreadPoolExecutor(IO_THREADS) as pool:
        list(pool.map(lambda batch: [work(k) for k in batch], batches))
    return time.perf_counter() - start


def limits(store: ArtifactStore, keys: list[str]) -> dict[str, float]:
    def read_hash(key: str) -> object:
        return hashlib.sha256(store.read_bytes(key)).hexdigest()

    def decode(key: str, draft: bool, phash: bool = False) -> object:
        with Image.open(io.BytesIO(store.read_bytes(key))) as image:
            if draft:
                image.draft("L", (64, 64))
            image.load()
            return imagehash.phash(image) if phash else None

    return {
        "read + sha256 only": pooled(keys, read_hash),
        "read + Pillow decode (full)": pooled(keys, lambda k: decode(k, False)),
        "read + Pillow decode (draft)": pooled(keys, lambda k: decode(k, True)),
        "read + decode (draft) + imagehash.phash": pooled(keys, lambda k: decode(k, True, True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--boxes-per-image", type=int, default=10)
    parser.add_argument("--frames", type=int, default=10, help="frames per flight (group)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        start = time.perf_counter()
        n_boxes = generate(base / "src", args.images, args.boxes_per_image, args.frames)
        store = ArtifactStore((base / "artifacts").as_uri())
        stored = store_version(store, base / "src", "datasets/bench/versions/1")
        generated = time.perf_counter() - start
        spec = VersionSpec(
            stored.manifest_key, stored.manifest_sha256, stored.blob_prefix, stored.snapshot_sha256,
            {"all": "annotations.json"}, SplitFractions(), 0, 640, "datasets/bench/versions/1/prepared",
        )  # fmt: skip
        start = time.perf_counter()
        prepared = prepare_version(store, spec, lambda *a: None)
        total = time.perf_counter() - start
        entries = json.loads(store.read_bytes(stored.manifest_key))
        keys = [f"{stored.blob_prefix}/{e['sha256']}" for e in entries if e["path"].endswith(".jpg")]
        machine = limits(store, keys)
    report(args.images, n_boxes, prepared.stage_seconds, total, machine, generated)
    split = prepared.split
    assert split is not None and not prepared.problems, prepared.summary
    print(
        f"split: {[(c.split, c.images) for c in prepared.profile.splits] if prepared.profile else '-'}  "
        f"groups: {split.groups}  duplicate sets: {len(split.duplicates)} "
        f"(exact {sum(1 for d in split.duplicates if d.duplicates.kind == 'exact')})  "
        f"leaked before moving: {split.leaked_images}  split_sha256: {split.split_sha256[:16]}..."
    )


def report(
    n_images: int,
    n_boxes: int,
    stages: dict[str, float],
    total: float,
    machine: dict[str, float],
    generated: float,
) -> None:
    table = Table(
        title=f"dataset version preparation: {n_images} images, {n_boxes} boxes, {IO_THREADS} threads"
    )
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("images/s", justify="right")
    for stage, seconds in stages.items():
        table.add_row(stage, f"{seconds:.3f}", f"{n_images / seconds:,.0f}" if seconds else "-")
    table.add_row("[b]total prepare_version[/b]", f"[b]{total:.3f}[/b]", f"[b]{n_images / total:,.0f}[/b]")
    table.add_section()
    for name, seconds in machine.items():
        table.add_row(f"limit: {name}", f"{seconds:.3f}", f"{n_images / seconds:,.0f}")
    table.add_section()
    table.add_row("(generating + storing the version)", f"{generated:.3f}", "")
    Console().print(table)


if __name__ == "__main__":
    main()
