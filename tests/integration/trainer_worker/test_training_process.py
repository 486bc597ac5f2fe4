"""Real MMDetection training (RTMDet-tiny, CPU) in a child process: progress, results, cancel, kill+resume.

Tiny on purpose (16 images of 96 px, batch 4): these prove the mechanics, not the accuracy; bench/ measures
that. Each test trains for real, so they are marked slow.
"""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

import pytest

from common.checkpoint_safety import load_untrusted_checkpoint
from common.mmdet_config import HyperParams, build_config
from common.mmdet_fill import fill_dataset
from services.trainer_worker.adapters.dataset_source import prepare_dataset
from services.trainer_worker.adapters.training import (
    TrainingProcess,
    TrainingSpec,
    latest_checkpoint,
)
from services.trainer_worker.domain.outcome import Cancelled, Failure, FailureKind, Phase, TrainingResult
from tests.fixtures.synthetic_coco import make_dataset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SIDE = 96
CLASSES = ("bottle", 'it\'s a "tire"', "bag")  # quotes in a class name travel as data end to end


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("datasets")
    make_dataset(root / "tiny", n_images=16, size=SIDE, classes=CLASSES, seed=1)
    prepared = prepare_dataset(f"file://{root}", "tiny", root / "prepared", seed=0)
    assert prepared.counts["train"] >= 8 and prepared.counts["val"] >= 2
    add_coco_info(prepared)
    return prepared


def add_coco_info(prepared) -> None:  # type: ignore[no-untyped-def]
    """pycocotools 2.0.10 ``COCO.loadRes`` (mmdet's CocoMetric) needs an "info" key that the prepared
    split files lack; the worker adds it (domain/coco.py), so do the same (no-op once they have it)."""
    for ann in (prepared.train_ann, prepared.val_ann, prepared.test_ann):
        if ann is not None:
            doc = json.loads(ann.read_text())
            if "info" not in doc:
                ann.write_text(json.dumps({**doc, "info": {}, "licenses": []}))


def config_for(prepared, work_dir: Path, epochs: int, resume_from: Path | None = None):  # type: ignore[no-untyped-def]
    hp = HyperParams(epochs=epochs, batch_size=4, image_size=SIDE, val_interval=1, seed=3)
    resolved = build_config("rtmdet_tiny", prepared.class_names, hp)
    return fill_dataset(
        resolved.data, prepared, work_dir, device="cpu", load_from=None, resume_from=resume_from
    )


def spec_for(prepared, work_dir: Path, epochs: int, **kwargs) -> TrainingSpec:  # type: ignore[no-untyped-def]
    cfg = config_for(prepared, work_dir, epochs, kwargs.pop("resume_from", None))
    return TrainingSpec(cfg.to_dict(), work_dir, "cpu", has_test=prepared.test_ann is not None,
                        progress_every_iters=1, **kwargs)  # fmt: skip


async def test_training_reports_progress_and_leaves_results(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    process = TrainingProcess(spec_for(prepared, tmp_path, epochs=2))
    process.start()
    events = [event async for event in process.events()]

    result = process.outcome
    assert isinstance(result, TrainingResult), result
    assert process.exit_code == 0
    kinds = [e.kind for e in events]
    assert kinds[0] == "phase" and events[0].phase is Phase.TRAINING
    assert kinds.count("epoch") == 2 and kinds.count("val") == 2
    assert events[-1].kind == "phase" and events[-1].phase is Phase.EVALUATING
    iters = [e for e in events if e.kind == "iter"]
    assert iters and iters[-1].iter == iters[-1].max_iters == result.iterations_run
    assert all("loss" in e.losses and e.lr > 0 and e.max_epochs == 2 for e in iters)
    assert "coco/bbox_mAP" in [e for e in events if e.kind == "val"][-1].val_metrics

    assert Path(result.best_checkpoint).name.startswith("best_coco_bbox_mAP_epoch_")
    metrics = json.loads(Path(result.metrics_path).read_text())
    for split in ("val", "test") if prepared.test_ann else ("val",):
        assert {"bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m", "bbox_mAP_l"} <= set(
            metrics[split]
        )
        assert set(metrics[split]["per_class_ap"]) == set(CLASSES)
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert all("train_loss" in h and "bbox_mAP" in h for h in metrics["history"])
    assert metrics["best_epoch"] in (1, 2) and metrics["parameter_count"] == result.parameter_count > 1e6
    assert result.versions["mmdet"] == "3.3.0" and result.versions["device"] == "cpu"
    png = Path(result.curves_path).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24])[0] >= 400
    assert "mmengine" in Path(result.log_path).read_text()
    assert not (tmp_path / "config.py").exists()  # the worker stores the config as JSON data (steps.py)


async def test_stop_request_ends_cancelled_with_a_checkpoint(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    process = TrainingProcess(spec_for(prepared, tmp_path, epochs=6))
    process.start()
    killer = None
    async for event in process.events():
        if event.kind == "iter" and event.iter >= 2 and not process.stop_requested:
            process.request_stop()
            killer = asyncio.create_task(process.kill_after(120))
    outcome = process.outcome

    assert isinstance(outcome, Cancelled), outcome
    assert killer is not None and await killer is False  # it stopped by itself within the grace period
    assert process.exit_code == 0
    checkpoint = Path(outcome.last_checkpoint or "")
    assert checkpoint.is_file() and latest_checkpoint(tmp_path) == checkpoint
    meta = load_untrusted_checkpoint(checkpoint)["meta"]
    assert meta["iter"] == int(checkpoint.stem.split("_")[1]) >= 2
    assert meta["epoch"] < 6


async def test_killed_training_resumes_from_its_checkpoint_with_fewer_iterations(
    prepared, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    epochs = 3
    first = TrainingProcess(spec_for(prepared, tmp_path, epochs=epochs, evaluate=False))
    first.start()
    max_iters = 0
    async for event in first.events():
        max_iters = event.max_iters or max_iters
        if event.kind == "epoch" and event.epoch == 1:
            first.kill()  # SIGKILL right after the first epoch's checkpoint was written
    assert isinstance(first.outcome, Failure) and first.outcome.kind is FailureKind.CHILD_CRASHED
    assert first.outcome.kind.retryable and "SIGKILL" in first.outcome.message
    assert not any("Warning" in line or str(tmp_path) in line for line in first.outcome.details)
    checkpoint = latest_checkpoint(tmp_path)
    assert checkpoint is not None and checkpoint.name == "epoch_1.pth"

    second = TrainingProcess(spec_for(prepared, tmp_path, epochs=epochs, resume_from=checkpoint))
    second.start()
    events = [event async for event in second.events()]
    result = second.outcome

    assert isinstance(result, TrainingResult), result
    per_epoch = max_iters // epochs
    assert result.iterations_run == max_iters - per_epoch < max_iters
    assert result.resumed_from == str(checkpoint) and result.epochs == epochs
    assert [e.epoch for e in events if e.kind == "epoch"] == [2, 3]
    metrics = json.loads(Path(result.metrics_path).read_text())
    assert [h["epoch"] for h in metrics["history"]][-2:] == [2, 3]


async def test_a_config_mmdet_cannot_build_fails_as_invalid_config(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = config_for(prepared, tmp_path, epochs=1)
    cfg.model.type = "NoSuchDetector"
    process = TrainingProcess(TrainingSpec(cfg.to_dict(), tmp_path, "cpu"))
    process.start()
    outcome = await process.wait()

    assert isinstance(outcome, Failure) and outcome.kind is FailureKind.INVALID_CONFIG, outcome
    assert "NoSuchDetector" in outcome.message and outcome.details
    assert process.exit_code == 0  # a bad job is reported, not a crash


async def test_a_child_that_does_not_stop_in_time_is_killed_and_ends_cancelled(tmp_path: Path) -> None:
    process = TrainingProcess(TrainingSpec({"model": {}}, tmp_path, "cpu"))
    process.start()
    process.request_stop()  # the child is still importing torch: it cannot honour the request in 0.2 s
    assert await process.kill_after(0.2) is True
    outcome = await process.wait()

    assert isinstance(outcome, Cancelled) and outcome.last_checkpoint is None, outcome
    assert process.exit_code == -9


async def test_a_hostile_hook_that_reaches_the_child_is_refused_before_anything_is_built(  # type: ignore[no-untyped-def]
    prepared, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    spec = spec_for(prepared, tmp_path / "work", epochs=1)
    spec.config["custom_hooks"] = [{"type": "subprocess.getoutput", "cmd": f"touch {canary}"}]
    process = TrainingProcess(spec)
    process.start()
    _ = [event async for event in process.events()]
    outcome = process.outcome
    assert isinstance(outcome, Failure) and outcome.kind is FailureKind.INVALID_CONFIG, outcome
    assert "custom_hooks[0].type: 'subprocess.getoutput'" in outcome.message
    assert not canary.exists()
