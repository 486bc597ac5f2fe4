"""Dataset preparation throughput: N images / M boxes through the real adapter (validate, hash, split, write).

    .venv/bin/python bench/bench_dataset_prep.py [--images 10000] [--boxes-per-image 10] [--keep DIR]

The images are one small JPEG's bytes under many names (the work is per file: open, read, hash, header parse);
30 % of the annotations are polygon-only so the envelope path is measured too. Files are freshly written,
so the page cache is warm: this measures our code, not the disk.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.trainer_worker.adapters.dataset_source import IO_THREADS, prepare_dataset

SIZE = 64
CLASSES = ("bottle", "tire", "bag", "plastic", "rubble", "wood", "metal", "glass")


def generate(dataset_dir: Path, n_images: int, boxes_per_image: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    buffer = io.BytesIO()
    Image.new("RGB", (SIZE, SIZE), (120, 105, 80)).save(buffer, "JPEG", quality=90)
    payload = buffer.getvalue()
    (dataset_dir / "images").mkdir(parents=True)
    images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    for image_id in range(1, n_images + 1):
        file_name = f"images/{image_id:06d}.jpg"
        (dataset_dir / file_name).write_bytes(payload)
        images.append({"id": image_id, "file_name": file_name, "width": SIZE, "height": SIZE})
        for _ in range(boxes_per_image):
            x, y = rng.uniform(0, SIZE - 20), rng.uniform(0, SIZE - 20)
            w, h = rng.uniform(4, 19), rng.uniform(4, 19)
            ann: dict[str, object] = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "iscrowd": 0,
                "category_id": 1 + min(int(rng.expovariate(0.6)), len(CLASSES) - 1),
            }
            if rng.random() < 0.3:
                ann["segmentation"] = [[x, y, x + w, y, x + w / 2, y + h]]
            else:
                ann["bbox"] = [x, y, w, h]
            annotations.append(ann)
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(CLASSES)]
    doc = {"images": images, "annotations": annotations, "categories": categories}
    (dataset_dir / "annotations.json").write_text(json.dumps(doc))
    return len(annotations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--boxes-per-image", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="work in this directory instead of a temporary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        start = time.perf_counter()
        n_boxes = generate(base / "datasets" / "bench", args.images, args.boxes_per_image)
        generated = time.perf_counter() - start
        start = time.perf_counter()
        prepared = prepare_dataset((base / "datasets").as_uri(), "bench", base / "work", seed=0)
        total = time.perf_counter() - start
    table = Table(
        title=f"dataset preparation: {args.images} images, {n_boxes} boxes, {IO_THREADS} I/O threads"
    )
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("images/s", justify="right")
    for stage, seconds in prepared.stage_seconds.items():
        table.add_row(stage, f"{seconds:.3f}", f"{args.images / seconds:,.0f}" if seconds else "-")
    table.add_row("[b]total prepare_dataset[/b]", f"[b]{total:.3f}[/b]", f"[b]{args.images / total:,.0f}[/b]")
    table.add_row("(generating the data set)", f"{generated:.3f}", "")
    Console().print(table)
    print(f"split: {prepared.counts}  sha256: {prepared.snapshot_sha256[:16]}...")


if __name__ == "__main__":
    main()
