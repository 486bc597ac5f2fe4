"""Tiled vs untiled training on "large image, tiny objects": the same template, the same wall-clock budget.

    .venv/bin/python bench/bench_tiling.py [--budget 150] [--train 12] [--size 1600] [--image-size 160]

A synthetic dataset of ``--size`` px frames with 8-20 px objects (``tests/fixtures/tiny_objects.py``; 3 val
and 3 test images) is prepared by the worker's real preparation; RTMDet-tiny (random init, same
hyperparameters, input ``--image-size``) is trained twice through ``TrainingProcess``: on the full images,
and on tiles of ``--image-size`` px (overlap a fifth) cut by the worker's tile cache. Each training is
stopped by a stop request ``--budget`` seconds after its first iteration (checkpointed), and its last
checkpoint is evaluated on the same full-image test split by the worker's evaluation: plain inference for
the untiled model, sliced inference (tile, predict, shift back, NMS merge) for the tiled one. Prints both
models' test bbox mAP and mAP_s (COCO small: area < 32²) with their iterations and times.
The CPU may be shared: compare within one invocation only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.mmdet_config import HyperParams, build_config  # noqa: E402
from common.mmdet_fill import fill_dataset  # noqa: E402
from common.tiling import Tiling, default_overlap  # noqa: E402
from services.trainer_worker.adapters.dataset_source import prepare_dataset  # noqa: E402
from services.trainer_worker.adapters.tile_cache import tiled_train  # noqa: E402
from services.trainer_worker.adapters.training import TrainingProcess, TrainingSpec  # noqa: E402
from services.trainer_worker.domain.outcome import Cancelled, TrainingResult  # noqa: E402
from tests.fixtures.tiny_objects import make_tiny_object_dataset  # noqa: E402

console = Console(width=120)
EPOCHS = 500  # never reached: the budget stops training (the same schedule for both)


async def train_for(spec: TrainingSpec, budget: float) -> tuple[Path, int, float]:
    """Trains until ``budget`` seconds after the first iteration; (checkpoint, iterations, seconds)."""
    process = TrainingProcess(spec)
    process.start()
    started: float | None = None
    stopped: float | None = None
    iterations = 0
    async for progress in process.events():
        if progress.kind == "iter":
            iterations = max(iterations, progress.iter)
            started = started or time.monotonic()
            if time.monotonic() - started >= budget and not process.stop_requested:
                stopped = time.monotonic()
                process.request_stop()
    outcome = process.outcome
    if isinstance(outcome, Cancelled) and outcome.last_checkpoint:
        return Path(outcome.last_checkpoint), iterations, (stopped or time.monotonic()) - (started or 0.0)
    if isinstance(outcome, TrainingResult) and outcome.last_checkpoint:
        return Path(outcome.last_checkpoint), iterations, outcome.training_seconds
    raise RuntimeError(f"training ended without a checkpoint: {outcome}")


def test_metrics(config: dict[str, Any], checkpoint: Path, work_dir: Path) -> tuple[dict[str, float], float]:
    """The worker's test evaluation of ``checkpoint`` (sliced for a tiled config), scored by the analysis."""
    from mmengine.config import Config

    from common.checkpoint_safety import install_safe_globals
    from services.trainer_worker.adapters.evaluation import evaluate_checkpoint
    from services.trainer_worker.adapters.split_analysis import analyze_test_split

    install_safe_globals()  # checkpoints load with torch.load(weights_only=True), as in the training child
    cfg = Config(config)
    started = time.monotonic()
    evaluate_checkpoint(cfg, checkpoint, "test", work_dir)
    analysis = analyze_test_split(Path(cfg.test_evaluator.ann_file), work_dir / "eval_test", work_dir)
    return analysis.metrics, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=float, default=150.0, help="training seconds per model")
    parser.add_argument("--train", type=int, default=12, help="train images (plus 3 val, 3 test)")
    parser.add_argument("--size", type=int, default=1600, help="image side in pixels")
    parser.add_argument("--image-size", type=int, default=160, help="model input side = tile side")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-tiling-") as tmp:
        root = Path(tmp)
        t0 = time.monotonic()
        make_tiny_object_dataset(root / "data" / "tiny", n_images=args.train + 6, size=args.size,
                                 objects=(15, 25), seed=args.seed, split=(3, 3))  # fmt: skip
        prepared = prepare_dataset(f"file://{root / 'data'}", "tiny", root / "prepared", seed=args.seed)
        tiling = Tiling(args.image_size, default_overlap(args.image_size), 0.5)
        tiled = tiled_train(prepared, tiling, args.seed, root / "tile-cache")
        console.print(
            f"dataset: {prepared.counts['train']} train / {prepared.counts['test']} test images of "
            f"{args.size} px, {tiled.tiles} train tiles ({tiled.empty_tiles} empty), "
            f"ready in {time.monotonic() - t0:.0f} s"
        )
        for label, data in (
            ("full images", prepared),
            (f"tiles {tiling.tile_size}/{tiling.overlap}", tiled.prepared),
        ):
            hp = HyperParams(
                epochs=EPOCHS, batch_size=args.batch, image_size=args.image_size, val_interval=EPOCHS,
                seed=args.seed,
            )  # fmt: skip
            hp = tiling.applied_to(hp) if data is tiled.prepared else hp
            work = root / ("tiled" if data is tiled.prepared else "full")
            cfg = fill_dataset(build_config("rtmdet_tiny", [], hp).data, data, work, device="cpu",
                               load_from=None, resume_from=None).to_dict()  # fmt: skip
            spec = TrainingSpec(cfg, work, "cpu", has_test=True, evaluate=False, progress_every_iters=1,
                                progress_every_seconds=0.0)  # fmt: skip
            checkpoint, iterations, seconds = asyncio.run(train_for(spec, args.budget))
            metrics, eval_seconds = test_metrics(cfg, checkpoint, work)
            rows.append((label, iterations, seconds, eval_seconds, metrics))
            console.print(
                f"{label}: {iterations} iterations in {seconds:.0f} s, test mAP {metrics['bbox_mAP']:.4f}"
            )

    table = Table(title=f"RTMDet-tiny, input {args.image_size} px, {args.budget:.0f} s of training each, "
                  f"test split on full {args.size} px images")  # fmt: skip
    for column in ("training", "iterations", "train s", "eval s", "bbox mAP", "mAP_50", "mAP_s", "inference"):
        table.add_column(column, justify="left" if column in ("training", "inference") else "right")
    for label, iterations, seconds, eval_seconds, m in rows:
        inference = "sliced + NMS" if label.startswith("tiles") else "full image"
        table.add_row(label, str(iterations), f"{seconds:.0f}", f"{eval_seconds:.0f}", f"{m['bbox_mAP']:.4f}",
                      f"{m['bbox_mAP_50']:.4f}", f"{m['bbox_mAP_s']:.4f}", inference)  # fmt: skip
    console.print(table)
    print(json.dumps({label: {k: m[k] for k in ("bbox_mAP", "bbox_mAP_s")} for label, *_, m in rows}))


if __name__ == "__main__":
    main()
