"""Failure classification, device choice and the evaluation's pure helpers (no training)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from common.checkpoint_safety import UnsafeCheckpoint
from services.trainer_worker.adapters.evaluation import (
    CARRIED_SCALARS,
    detection_metrics,
    find_best_checkpoint,
    read_history,
)
from services.trainer_worker.adapters.training import classify_exception, latest_checkpoint, resolve_device
from services.trainer_worker.domain.outcome import FailureKind

CONFIG = {"train_dataloader": {"batch_size": 16}}


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    ("exc", "stage", "kind", "hint"),
    [
        (
            torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
            "train",
            "OUT_OF_MEMORY",
            "16",
        ),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory"), "train", "OUT_OF_MEMORY", "batch_size"),
        (MemoryError(), "train", "OUT_OF_MEMORY", "image_size"),
        (
            KeyError("NoSuchDetector is not in the mmdet::model registry"),
            "build",
            "INVALID_CONFIG",
            "template",
        ),
        (UnsafeCheckpoint("refused: Unsupported global os.system"), "train", "INVALID_CONFIG", "unsafe"),
        (pickle.UnpicklingError("Weights only load failed"), "train", "INVALID_CONFIG", "unsafe"),
        (FileNotFoundError(2, "No such file", "/data/img.jpg"), "train", "INVALID_DATASET", "img.jpg"),
        (ZeroDivisionError("division by zero"), "train", "INTERNAL_ERROR", "ZeroDivisionError"),
        (KeyboardInterrupt(), "train", "CHILD_CRASHED", "interrupted"),
    ],
)
def test_exceptions_are_classified_with_an_actionable_message(exc, stage, kind, hint) -> None:  # type: ignore[no-untyped-def]
    failure = classify_exception(raised(exc), stage=stage, device="cpu", config=CONFIG)
    assert failure.kind is FailureKind(kind)
    assert hint in failure.message
    assert failure.details  # the traceback's last lines


def test_device_resolution_on_this_machine() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda:1")


def test_best_and_latest_checkpoints_are_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        find_best_checkpoint(tmp_path)
    (tmp_path / "epoch_3.pth").write_bytes(b"x")
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "epoch_3.pth"))
    assert latest_checkpoint(tmp_path) == tmp_path / "epoch_3.pth"
    assert find_best_checkpoint(tmp_path) == (tmp_path / "epoch_3.pth", 0)
    (tmp_path / "best_coco_bbox_mAP_epoch_2.pth").write_bytes(b"x")
    assert find_best_checkpoint(tmp_path) == (tmp_path / "best_coco_bbox_mAP_epoch_2.pth", 2)
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "gone.pth"))
    assert latest_checkpoint(tmp_path) is None


def test_detection_metrics_rename_coco_keys_and_mark_classes_without_data() -> None:
    raw = {"coco/bbox_mAP": 0.5, "coco/bbox_mAP_50": 0.9, "coco/bottle_precision": 0.7,
           "coco/bag_precision": float("nan")}  # fmt: skip
    out = detection_metrics(raw, ("bottle", "bag", "tire"))
    assert out["bbox_mAP"] == 0.5 and out["bbox_mAP_50"] == 0.9 and out["bbox_mAP_l"] == -1.0
    assert out["per_class_ap"] == {"bottle": 0.7, "bag": -1.0, "tire": -1.0}


def test_history_merges_every_run_directory_of_a_resumed_training(tmp_path: Path) -> None:
    first = [{"loss": 2.0, "lr": 0.01, "epoch": 1, "iter": 5, "step": 5},
             {"coco/bbox_mAP": 0.1, "coco/bbox_mAP_50": 0.3, "step": 1}]  # fmt: skip
    second = [{"loss": 1.0, "lr": 0.005, "epoch": 2, "iter": 10, "step": 10},
              {"loss": 0.5, "lr": 0.004, "epoch": 2, "iter": 12, "step": 12},
              {"coco/bbox_mAP": 0.4, "coco/bbox_mAP_50": 0.8, "step": 2}]  # fmt: skip
    for run, records in (("20260101_000000", first), ("20260101_010000", second)):
        vis = tmp_path / run / "vis_data"
        vis.mkdir(parents=True)
        lines = [json.dumps(r) for r in records] + ['{"cut short by a kill']
        (vis / "scalars.json").write_text("\n".join(lines))

    history = read_history(tmp_path)

    assert history == [
        {"epoch": 1, "lr": 0.01, "bbox_mAP": 0.1, "bbox_mAP_50": 0.3, "train_loss": 2.0},
        {"epoch": 2, "lr": 0.004, "bbox_mAP": 0.4, "bbox_mAP_50": 0.8, "train_loss": 0.75},
    ]


def test_an_attempt_resumed_after_the_last_epoch_evaluates_the_resume_checkpoint(tmp_path: Path) -> None:
    """The previous worker died while evaluating: the new attempt trains nothing and saves no checkpoint."""
    work_dir, resume = tmp_path / "train", tmp_path / "resume" / "epoch_3.pth"
    work_dir.mkdir()
    with pytest.raises(FileNotFoundError):
        find_best_checkpoint(work_dir, resume)  # named but not downloaded
    resume.parent.mkdir()
    resume.write_bytes(b"x")
    assert find_best_checkpoint(work_dir, resume) == (resume, 0)
    (work_dir / "epoch_3.pth").write_bytes(b"x")
    (work_dir / "last_checkpoint").write_text(str(work_dir / "epoch_3.pth"))
    assert find_best_checkpoint(work_dir, resume) == (work_dir / "epoch_3.pth", 0)


def test_a_resumed_attempt_starts_its_history_from_what_its_checkpoint_carried(tmp_path: Path) -> None:
    """The killed attempt's own dir also logged part of epoch 2, which the resumed attempt trained again:
    only the carried scalars (epochs up to the checkpoint's) and the resumed attempt's count."""
    killed = [{"loss": 2.0, "lr": 0.01, "epoch": 1, "iter": 5, "step": 5},
              {"loss": 9.0, "lr": 0.01, "epoch": 2, "iter": 7, "step": 7}]  # fmt: skip
    carried = [{"loss": 2.0, "lr": 0.01, "epoch": 1, "iter": 5, "step": 5}]
    resumed = [{"coco/bbox_mAP": 0.1, "coco/bbox_mAP_50": 0.3, "step": 1},  # the checkpoint's epoch validated
               {"loss": 1.0, "lr": 0.005, "epoch": 2, "iter": 10, "step": 10},
               {"coco/bbox_mAP": 0.4, "coco/bbox_mAP_50": 0.8, "step": 2}]  # fmt: skip
    for run, records in (("20260101_000000", killed), ("20260101_010000", resumed)):
        (tmp_path / run / "vis_data").mkdir(parents=True)
        (tmp_path / run / "vis_data" / "scalars.json").write_text("\n".join(map(json.dumps, records)))
    (tmp_path / "20260101_010000" / CARRIED_SCALARS).write_text("\n".join(map(json.dumps, carried)))

    assert read_history(tmp_path) == [
        {"epoch": 1, "lr": 0.01, "bbox_mAP": 0.1, "bbox_mAP_50": 0.3, "train_loss": 2.0},
        {"epoch": 2, "lr": 0.005, "bbox_mAP": 0.4, "bbox_mAP_50": 0.8, "train_loss": 1.0},
    ]
