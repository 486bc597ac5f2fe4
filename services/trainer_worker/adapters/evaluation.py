"""Evaluation after training (runs in the training child): best checkpoint, COCO metrics, curves, versions.

The best checkpoint (CheckpointHook ``save_best='coco/bbox_mAP'``) is evaluated on val and, when present, on
test with mmdet's ``CocoMetric(classwise=True)``. History comes from mmengine's ``vis_data/scalars.json`` of
every run in the work dir and, in a resumed attempt, from the scalars its checkpoint carried
(``resume_state``). Per-class AP is -1 for a class without ground truth in the split (COCO's convention
for "no data").

Runs in the training child only; the heavy imports (mmengine's Runner, matplotlib, the frameworks whose
versions are recorded) sit in the functions that need them, so the worker's parent process and the unit
tests of the pure helpers here never load them.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.evaluation_analysis import COCO_KEYS, finite
from common.inference_settings import inference_of

if TYPE_CHECKING:
    from services.trainer_worker.adapters.split_analysis import SplitAnalysis

METRICS_FILE = "metrics.json"
CURVES_FILE = "training_curves.png"
CARRIED_SCALARS = "carried_scalars.json"  # in a resumed attempt's log dir: the scalars logged before it
_BEST = re.compile(r"best_coco_bbox_mAP_epoch_(\d+)\.pth$")


@dataclass(frozen=True)
class EvaluationReport:
    best_checkpoint: Path
    best_epoch: int
    metrics: dict[str, Any]
    metrics_path: Path
    curves_path: Path
    parameter_count: int
    versions: dict[str, str]
    analysis_files: tuple[Path, ...] = ()  # the test split's predictions, analysis JSON and plots


def evaluate_training(cfg: Any, work_dir: Path, *, has_test: bool, device: str) -> EvaluationReport:
    """Evaluates the best checkpoint of a finished training in ``work_dir`` and writes the result files."""
    resumed_from = Path(cfg.load_from) if cfg.get("resume") and cfg.get("load_from") else None
    best, best_epoch = find_best_checkpoint(work_dir, resumed_from)
    classes = tuple(cfg.val_dataloader.dataset.metainfo.classes)
    val, parameter_count = evaluate_checkpoint(cfg, best, "val", work_dir)
    test = evaluate_checkpoint(cfg, best, "test", work_dir)[0] if has_test else None
    analysis = _analyze_test(cfg, work_dir) if has_test else None
    history = read_history(work_dir)
    if best_epoch <= 0 and history:
        best_epoch = max(history, key=lambda h: h.get("bbox_mAP", -1.0))["epoch"]
    metrics: dict[str, Any] = {
        "val": detection_metrics(val, classes),
        # the test split's analysis (pycocotools over the stored predictions, unrounded) when there is one
        "test": analysis.metrics if analysis else None if test is None else detection_metrics(test, classes),
        "best_epoch": best_epoch,
        "best_checkpoint": best.name,
        "history": history,
        "parameter_count": parameter_count,
        "versions": framework_versions(device),
        "inference": inference_of(cfg).record(),  # sliced into tiles and merged, or on full images
    }
    metrics_path = work_dir / METRICS_FILE
    metrics_path.write_text(json.dumps(finite(metrics), indent=2, ensure_ascii=False))
    curves_path = plot_training_curves(history, _iteration_losses(work_dir), work_dir / CURVES_FILE)
    return EvaluationReport(
        best,
        best_epoch,
        metrics,
        metrics_path,
        curves_path,
        parameter_count,
        metrics["versions"],
        analysis.files if analysis else (),
    )


def _analyze_test(cfg: Any, work_dir: Path) -> SplitAnalysis:
    """The test split's analysis of the predictions ``evaluate_checkpoint`` kept (files in ``work_dir``)."""
    from services.trainer_worker.adapters.split_analysis import analyze_test_split

    dataset = cfg.test_dataloader.dataset
    ann_file = Path(cfg.test_evaluator.get("ann_file") or dataset.ann_file)
    prefix = (dataset.get("data_prefix") or {}).get("img", "")
    image_root = Path(dataset.get("data_root") or ann_file.parent) / prefix
    return analyze_test_split(ann_file, work_dir / "eval_test", work_dir, image_root)


def find_best_checkpoint(work_dir: Path, resumed_from: Path | None = None) -> tuple[Path, int]:
    """``best_coco_bbox_mAP_epoch_N.pth`` with the largest N (the best epoch), else the last checkpoint
    (epoch unknown: 0).

    An attempt that resumed from the final epoch's checkpoint (the previous worker died while evaluating or
    uploading) trains nothing and saves nothing: the checkpoint it resumed from is then the last one.
    """
    candidates = [(int(m.group(1)), p) for p in work_dir.glob("*.pth") if (m := _BEST.search(p.name))]
    if candidates:  # the run's best carried from an earlier attempt, and maybe this attempt's (a later epoch)
        epoch, best = max(candidates)
        return best, epoch
    pointer = work_dir / "last_checkpoint"
    if pointer.is_file() and Path(pointer.read_text().strip()).is_file():
        return Path(pointer.read_text().strip()), 0
    if resumed_from is not None and resumed_from.is_file():
        return resumed_from, 0
    raise FileNotFoundError(f"no checkpoint in {work_dir}: training saved none")


def evaluate_checkpoint(
    cfg: Any, checkpoint: Path, split: str, work_dir: Path
) -> tuple[dict[str, float], int]:
    """COCO bbox metrics of ``checkpoint`` on a split via a test-only Runner; (metrics, parameter count).
    A model trained on tiles is evaluated by sliced inference on the split's full images instead."""
    from mmengine.runner import Runner

    from services.trainer_worker.adapters import sliced_inference

    tiling = sliced_inference.sliced_settings(cfg)
    if tiling is not None:
        from services.trainer_worker.adapters.split_analysis import predictions_prefix

        prefix = predictions_prefix(work_dir / f"eval_{split}") if split == "test" else None
        return sliced_inference.evaluate_sliced(cfg, checkpoint, split, tiling, outfile_prefix=prefix)

    test_cfg = copy.deepcopy(cfg)
    evaluator = dict(test_cfg[f"{split}_evaluator"])
    evaluator["classwise"] = True
    if split == "test":  # keep the raw predictions (COCO results JSON) for the test split's analysis
        from services.trainer_worker.adapters.split_analysis import predictions_prefix

        evaluator["outfile_prefix"] = predictions_prefix(work_dir / f"eval_{split}")
    test_cfg.test_dataloader = test_cfg[f"{split}_dataloader"]
    test_cfg.test_evaluator = evaluator
    test_cfg.test_cfg = {"type": "TestLoop"}
    for key in ("train_dataloader", "train_cfg", "optim_wrapper", "param_scheduler"):
        test_cfg[key] = None
    for key in ("val_dataloader", "val_cfg", "val_evaluator"):
        test_cfg[key] = None
    test_cfg.load_from, test_cfg.resume = str(checkpoint), False
    test_cfg.launcher, test_cfg.model_wrapper_cfg = "none", None  # one process, also after a distributed run
    test_cfg.work_dir = str(work_dir / f"eval_{split}")
    if test_cfg.get("visualizer"):
        test_cfg.visualizer.pop("name", None)  # a fresh instance name per Runner
    runner = Runner.from_cfg(test_cfg)
    metrics = runner.test()
    return {k: float(v) for k, v in metrics.items()}, sum(p.numel() for p in runner.model.parameters())


def detection_metrics(raw: dict[str, float], classes: tuple[str, ...]) -> dict[str, Any]:
    """``coco/bbox_mAP``... → ``bbox_mAP``... plus ``per_class_ap`` {class: AP, -1 without ground truth}."""
    out: dict[str, Any] = {key: raw.get(f"coco/{key}", -1.0) for key in COCO_KEYS}
    out["per_class_ap"] = {name: _ap(raw.get(f"coco/{name}_precision")) for name in classes}
    return out


def read_history(work_dir: Path) -> list[dict[str, Any]]:
    """Per-epoch mean train loss, last lr and val bbox mAP (when validated), from every run's scalars."""
    epochs: dict[int, dict[str, Any]] = {}
    losses: dict[int, list[float]] = {}
    for record in _scalar_records(work_dir):
        if "coco/bbox_mAP" in record:
            entry = epochs.setdefault(int(record["step"]), {"epoch": int(record["step"])})
            entry["bbox_mAP"] = float(record["coco/bbox_mAP"])
            entry["bbox_mAP_50"] = float(record.get("coco/bbox_mAP_50", -1.0))
        elif "loss" in record and "epoch" in record:
            epoch = int(record["epoch"])
            losses.setdefault(epoch, []).append(float(record["loss"]))
            epochs.setdefault(epoch, {"epoch": epoch})["lr"] = float(record.get("lr", 0.0))
    for epoch, values in losses.items():
        epochs[epoch]["train_loss"] = sum(values) / len(values)
    return [epochs[e] for e in sorted(epochs)]


def plot_training_curves(
    history: list[dict[str, Any]], iter_losses: list[tuple[int, float]], path: Path
) -> Path:
    """Loss per iteration and per epoch, val mAP per epoch; matplotlib's Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(11, 4))
    if iter_losses:
        ax_loss.plot(*zip(*iter_losses, strict=True), lw=1, alpha=0.6, label="loss (logged iterations)")
    with_loss = [h for h in history if "train_loss" in h]
    if with_loss:
        per_epoch_iters = _epoch_end_iters(iter_losses, with_loss)
        ax_loss.plot(per_epoch_iters, [h["train_loss"] for h in with_loss], "o-", label="mean loss per epoch")
    ax_loss.set(xlabel="iteration", ylabel="loss", title="Training loss")
    ax_loss.legend(loc="upper right")
    validated = [h for h in history if "bbox_mAP" in h]
    ax_map.plot([h["epoch"] for h in validated], [h["bbox_mAP"] for h in validated], "o-", label="bbox mAP")
    ax_map.plot([h["epoch"] for h in validated], [h["bbox_mAP_50"] for h in validated], "s--", label="mAP@50")
    ax_map.set(xlabel="epoch", ylabel="COCO bbox mAP (val)", title="Validation", ylim=(0, 1))
    ax_map.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def framework_versions(device: str) -> dict[str, str]:
    import mmcv
    import mmdet
    import mmengine
    import torch

    name = device
    if device.startswith("cuda") and torch.cuda.is_available():
        # CUDA_VISIBLE_DEVICES maps a requested cuda:N to this process's current device.
        name = f"{device} ({torch.cuda.get_device_name(torch.cuda.current_device())})"
    return {
        "torch": torch.__version__, "mmcv": mmcv.__version__, "mmdet": mmdet.__version__,
        "mmengine": mmengine.__version__, "python": platform.python_version(), "device": name,
    }  # fmt: skip


def _scalar_records(work_dir: Path) -> list[dict[str, Any]]:
    """The run's logged scalars: a resumed attempt's log dir starts from what its checkpoint carried
    (``resume_state``), which replaces any earlier log dir in the same work dir."""
    records: list[dict[str, Any]] = []
    run_dirs = {p.parent.parent for p in work_dir.glob("*/vis_data/scalars.json")}
    run_dirs |= {p.parent for p in work_dir.glob(f"*/{CARRIED_SCALARS}")}
    for run_dir in sorted(run_dirs):  # timestamped run dirs sort by time
        if (run_dir / CARRIED_SCALARS).is_file():
            records = read_scalars(run_dir / CARRIED_SCALARS)
        records += read_scalars(run_dir / "vis_data" / "scalars.json")
    return records


def read_scalars(path: Path) -> list[dict[str, Any]]:
    """One mmengine ``scalars.json`` (JSON lines); nothing when absent."""
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a killed process
    return records


def _iteration_losses(work_dir: Path) -> list[tuple[int, float]]:
    points = {
        int(r["iter"]): float(r["loss"]) for r in _scalar_records(work_dir) if "loss" in r and "iter" in r
    }
    return sorted(points.items())


def _epoch_end_iters(iter_losses: list[tuple[int, float]], with_loss: list[dict[str, Any]]) -> list[float]:
    if not iter_losses:
        return [h["epoch"] for h in with_loss]
    per_epoch = iter_losses[-1][0] / max(h["epoch"] for h in with_loss)
    return [h["epoch"] * per_epoch for h in with_loss]


def _ap(value: float | None) -> float:
    return -1.0 if value is None or math.isnan(value) else float(value)
