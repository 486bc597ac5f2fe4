"""Training benchmarks: TrainingProcess overhead, and a demo-sized RTMDet-tiny schedule on CPU.

    .venv/bin/python bench/bench_training.py overhead [--repeats 2]
    .venv/bin/python bench/bench_training.py demo [--images 60] [--epochs N] [--image-size N] [--batch N]

``overhead``: the same tiny config (24 images of 128 px, RTMDet-tiny, 3 epochs, no final evaluation) run
directly with ``Runner.from_cfg(cfg).train()`` in a fresh interpreter, and through ``TrainingProcess``
(spawned child + progress hook + queue). Both walls include interpreter start and imports; runs alternate
so that load from other processes hits both alike.

``demo``: RTMDet-tiny from random init on a synthetic dataset split by the real preparation (70/20/10),
trained through TrainingProcess; prints val/test bbox mAP per epoch and the time it took.
The CPU may be shared: timings are noisy, compare within one invocation only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import resource
import statistics
import subprocess
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
from services.trainer_worker.adapters.dataset_source import prepare_dataset  # noqa: E402
from services.trainer_worker.adapters.training import TrainingProcess, TrainingSpec  # noqa: E402
from services.trainer_worker.domain.outcome import TrainingResult  # noqa: E402
from tests.fixtures.synthetic_coco import make_dataset  # noqa: E402

console = Console()


def prepared_dataset(root: Path, images: int, size: int, seed: int = 0) -> Any:
    make_dataset(root / "ds", n_images=images, size=size, seed=seed)
    prepared = prepare_dataset(f"file://{root}", "ds", root / "prepared", seed=seed)
    for ann in (prepared.train_ann, prepared.val_ann, prepared.test_ann):  # what the worker's steps.py adds:
        if ann is not None:  # pycocotools 2.0.10 COCO.loadRes needs an "info" key
            doc = json.loads(ann.read_text())
            ann.write_text(json.dumps({"info": {}, "licenses": [], **doc}))
    return prepared


def run_direct(config_pickle: Path) -> None:
    """Child entry of the direct measurement: a plain Runner, as a user would run it."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from common.checkpoint_safety import install_safe_globals

    install_safe_globals()
    cfg = Config(pickle.loads(config_pickle.read_bytes()))
    runner = Runner.from_cfg(cfg)
    started = time.monotonic()
    runner.train()
    print(json.dumps({"train_seconds": time.monotonic() - started, "iters": runner.iter}))


def direct_once(cfg: dict[str, Any], work: Path) -> tuple[float, float]:
    cfg = {**cfg, "work_dir": str(work)}
    blob = work.with_suffix(".pkl")
    work.mkdir(parents=True)
    blob.write_bytes(pickle.dumps(cfg))
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, __file__, "_direct", str(blob)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    wall = time.monotonic() - started
    return wall, json.loads(out.stdout.strip().splitlines()[-1])["train_seconds"]


async def process_once(
    cfg: dict[str, Any], work: Path, evaluate: bool = False, has_test: bool = False
) -> tuple[float, TrainingResult]:
    spec = TrainingSpec({**cfg, "work_dir": str(work)}, work, "cpu", has_test=has_test, evaluate=evaluate)
    process = TrainingProcess(spec)
    started = time.monotonic()
    process.start()
    outcome = await process.wait()
    if not isinstance(outcome, TrainingResult):
        raise RuntimeError(f"training did not complete: {outcome}")
    return time.monotonic() - started, outcome


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the training children, direct or spawned)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def overhead(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepared = prepared_dataset(root, images=24, size=128)
        hp = HyperParams(epochs=3, batch_size=4, image_size=128, val_interval=3)
        cfg = fill_dataset(
            build_config("rtmdet_tiny", prepared.class_names, hp).data, prepared, root / "unused",
            device="cpu", load_from=None, resume_from=None,
        ).to_dict()  # fmt: skip
        rows = []
        for i in range(repeats):
            cpu = cpu_seconds()
            d_wall, d_train = direct_once(cfg, root / f"direct{i}")
            d_cpu, cpu = cpu_seconds() - cpu, cpu_seconds()
            p_wall, result = asyncio.run(process_once(cfg, root / f"process{i}"))
            p_cpu = cpu_seconds() - cpu
            rows.append((d_wall, p_wall, d_cpu, p_cpu, d_train, result.training_seconds))
    table = Table(title="Same config (15 iterations): direct Runner.from_cfg vs TrainingProcess, seconds")
    for name in ("run", "direct wall", "process wall", "ratio", "direct CPU", "process CPU", "ratio",
                 "direct train()", "process train()", "ratio"):  # fmt: skip
        table.add_column(name, justify="right")
    for i, row in enumerate(rows):
        table.add_row(str(i), *_with_ratios(row))
    totals = tuple(sum(r[k] for r in rows) for k in range(6))
    table.add_row("all", *_with_ratios(totals))
    # The minimum over repeats is the least disturbed by other processes on a shared CPU.
    table.add_row("min", *_with_ratios(tuple(min(r[k] for r in rows) for k in range(6))))
    medians = tuple(statistics.median(r[k + 1] / r[k] for r in rows) for k in (0, 2, 4))
    console.print(table)
    console.print(
        "median ratios (process / direct): wall {:.3f}, CPU {:.3f}, train() {:.3f}".format(*medians)
    )


def _with_ratios(row: tuple[float, ...]) -> list[str]:
    out = []
    for k in (0, 2, 4):
        out += [f"{row[k]:.1f}", f"{row[k + 1]:.1f}", f"{row[k + 1] / row[k]:.3f}"]
    return out


def demo(
    images: int,
    epochs: int | None,
    image_size: int | None,
    batch: int | None,
    lr: float | None,
    val_interval: int | None,
    seed: int = 0,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepared = prepared_dataset(root, images=images, size=256, seed=seed)
        hp = HyperParams(epochs=epochs, batch_size=batch, image_size=image_size, learning_rate=lr,
                         val_interval=val_interval)  # fmt: skip
        resolved = build_config("rtmdet_tiny", prepared.class_names, hp)
        cfg = fill_dataset(
            resolved.data, prepared, root / "work", device="cpu", load_from=None, resume_from=None
        )
        has_test = prepared.test_ann is not None
        wall, result = asyncio.run(
            process_once(cfg.to_dict(), root / "work", evaluate=True, has_test=has_test)
        )
    metrics = result.metrics
    table = Table(title=f"RTMDet-tiny demo: {prepared.counts} images, {resolved.hyperparams}")
    for name in ("epoch", "train loss", "val bbox mAP", "val mAP@50"):
        table.add_column(name, justify="right")
    for h in metrics["history"]:
        nan = float("nan")
        table.add_row(str(h["epoch"]), f"{h.get('train_loss', nan):.3f}", f"{h.get('bbox_mAP', nan):.3f}",
                      f"{h.get('bbox_mAP_50', nan):.3f}")  # fmt: skip
    console.print(table)
    test = metrics.get("test") or {}
    console.print(
        f"best epoch {metrics['best_epoch']}: val bbox mAP {metrics['val']['bbox_mAP']:.3f} "
        f"(mAP@50 {metrics['val']['bbox_mAP_50']:.3f}), "
        f"test bbox mAP {test.get('bbox_mAP', float('nan')):.3f}; "
        f"train() {result.training_seconds:.0f} s for {result.iterations_run} iterations, wall {wall:.0f} s "
        f"(spawn, training, validation, final evaluation)"
    )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "_direct":
        run_direct(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    over = sub.add_parser("overhead")
    over.add_argument("--repeats", type=int, default=2)
    dem = sub.add_parser("demo")
    dem.add_argument("--images", type=int, default=60)
    dem.add_argument("--epochs", type=int, default=None, help="default: the template's")
    dem.add_argument("--image-size", type=int, default=None)
    dem.add_argument("--batch", type=int, default=None)
    dem.add_argument("--lr", type=float, default=None)
    dem.add_argument("--val-interval", type=int, default=None)
    dem.add_argument("--seed", type=int, default=0, help="dataset generation and split seed")
    args = parser.parse_args()
    if args.command == "overhead":
        overhead(args.repeats)
    else:
        demo(args.images, args.epochs, args.image_size, args.batch, args.lr, args.val_interval, args.seed)


if __name__ == "__main__":
    main()
