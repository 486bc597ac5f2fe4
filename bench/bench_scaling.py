"""Scale-up benchmarks on CPU: 1 vs 2 gloo ranks, and early stopping on vs off.

    .venv/bin/python bench/bench_scaling.py [--images 48] [--size 128] [--epochs 4] [--only ranks|stopping]

``ranks``: the same RTMDet-tiny run (random init, synthetic data split 70/20/10 by the real preparation)
trained through the worker's launcher with 1 rank (one child) and with 2 gloo ranks (``torch.distributed``,
MMEngine ``launcher='pytorch'``, each rank half the images and half the CPU threads). Throughput counts
train images seen (epochs x train images, padding of the distributed sampler included) per second of
training; mAP is the best checkpoint's on val and test, evaluated by rank 0 alone.

``stopping``: the same data trained for ``--epochs x 2`` epochs without and with early stopping
(patience 1, min_delta 0.01 on val bbox mAP): epochs trained, wall time, val/test mAP.

The machine's core count is printed beside: with 2 ranks on a 2-core machine each rank gets one core, so
the gloo numbers show the mechanics and overhead, not a GPU speed-up. Timings are noisy on a shared CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_training import prepared_dataset  # noqa: E402
from common.mmdet_config import HyperParams, build_config  # noqa: E402
from common.mmdet_fill import fill_dataset  # noqa: E402
from services.trainer_worker.adapters.distributed_launch import launch_training  # noqa: E402
from services.trainer_worker.adapters.training import TrainingSpec  # noqa: E402
from services.trainer_worker.domain.outcome import TrainingResult  # noqa: E402

console = Console()
BATCH = 4


async def train(prepared: Any, work: Path, hp: HyperParams, ranks: int) -> tuple[TrainingResult, float]:
    resolved = build_config("rtmdet_tiny", prepared.class_names, hp)
    cfg = fill_dataset(resolved.data, prepared, work, device="cpu", load_from=None, resume_from=None)
    spec = TrainingSpec(
        cfg.to_dict(), work, "cpu", has_test=prepared.test_ann is not None, progress_every_iters=50
    )
    started = time.monotonic()
    process = launch_training(spec, ranks=ranks)
    process.start()
    outcome = await process.wait()
    if not isinstance(outcome, TrainingResult):
        raise SystemExit(f"{ranks} rank(s): training did not finish: {outcome}")
    return outcome, time.monotonic() - started


def maps(result: TrainingResult) -> tuple[str, str]:
    val, test = result.metrics.get("val") or {}, result.metrics.get("test") or {}
    return f"{val.get('bbox_mAP', -1):.3f}", f"{test.get('bbox_mAP', -1):.3f}" if test else "-"


async def bench_ranks(prepared: Any, root: Path, args: argparse.Namespace) -> None:
    table = Table(title=f"1 vs 2 gloo ranks, RTMDet-tiny, {args.epochs} epochs, batch {BATCH} per rank, "
                        f"{os.cpu_count()} CPU cores")  # fmt: skip
    for column in ("ranks", "images seen", "train s", "images/s", "wall s", "val mAP", "test mAP"):
        table.add_column(column, justify="right")
    train_images = prepared.counts["train"]
    for ranks in (1, 2):
        hp = HyperParams(epochs=args.epochs, batch_size=BATCH, image_size=args.size, val_interval=1, seed=3)
        result, wall = await train(prepared, root / f"ranks-{ranks}", hp, ranks)
        seen = args.epochs * math.ceil(train_images / ranks) * ranks
        val, test = maps(result)
        table.add_row(str(ranks), str(seen), f"{result.training_seconds:.1f}",
                      f"{seen / result.training_seconds:.2f}", f"{wall:.1f}", val, test)  # fmt: skip
    console.print(table)


async def bench_stopping(prepared: Any, root: Path, args: argparse.Namespace) -> None:
    epochs = args.epochs * 2
    table = Table(title=f"early stopping (patience 1, min_delta 0.01) vs none, up to {epochs} epochs, "
                        f"{os.cpu_count()} CPU cores")  # fmt: skip
    for column in ("early stopping", "epochs trained", "stopped early", "train s", "wall s", "val mAP",
                   "test mAP"):  # fmt: skip
        table.add_column(column, justify="right")
    for label, patience in (("off", None), ("on", 1)):
        hp = HyperParams(epochs=epochs, batch_size=BATCH, image_size=args.size, val_interval=1, seed=3,
                         early_stopping_patience=patience,
                         early_stopping_min_delta=0.01 if patience else None)  # fmt: skip
        result, wall = await train(prepared, root / f"stopping-{label}", hp, 1)
        val, test = maps(result)
        table.add_row(label, str(result.epochs), "yes" if result.stopped_early else "no",
                      f"{result.training_seconds:.1f}", f"{wall:.1f}", val, test)  # fmt: skip
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--only", choices=("ranks", "stopping"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="raven-bench-scaling-") as tmp:
        root = Path(tmp)
        prepared = prepared_dataset(root, args.images, args.size)
        console.print(f"dataset: {prepared.counts} images of {args.size} px; {os.cpu_count()} CPU cores")
        if args.only in (None, "ranks"):
            asyncio.run(bench_ranks(prepared, root, args))
        if args.only in (None, "stopping"):
            asyncio.run(bench_stopping(prepared, root, args))


if __name__ == "__main__":
    main()
