"""Early stopping in a real MMDetection training (RTMDet-tiny, CPU, test_training_process's tiny dataset).

The mechanics, not the plateau (tests/e2e/test_budget_preemption_e2e.py shows a real one with min_delta
0.001): ``min_delta`` 1.0 makes an improvement of val bbox mAP impossible, so with ``patience`` 1 the run
stops at the validation after the first one that scores above 0 (the warm-up: from random weights the first
validations score 0 and do not count), before ``epochs``, and still leaves its best checkpoint and an
evaluation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.hyperparameters import validate_request
from common.mmdet_config import build_config
from common.mmdet_fill import fill_dataset
from common.mmdet_templates import TEMPLATES
from services.trainer_worker.adapters.training import TrainingProcess, TrainingSpec
from services.trainer_worker.domain.outcome import TrainingResult
from tests.integration.trainer_worker.test_training_process import SIDE, prepared  # noqa: F401 (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
EPOCHS = 12


async def test_a_plateau_stops_training_early_with_the_best_checkpoint(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    asked = validate_request(
        {"epochs": EPOCHS, "batch_size": 4, "image_size": SIDE, "val_interval": 1, "seed": 3,
         "early_stopping": {"patience": 1, "min_delta": 1.0}},
        TEMPLATES["rtmdet_tiny"], pretrained=False,
    )  # fmt: skip
    assert asked.violations == []
    resolved = build_config("rtmdet_tiny", prepared.class_names, asked.training)
    cfg = fill_dataset(resolved.data, prepared, tmp_path, device="cpu", load_from=None, resume_from=None)
    spec = TrainingSpec(cfg.to_dict(), tmp_path, "cpu", has_test=prepared.test_ann is not None)
    process = TrainingProcess(spec)
    process.start()
    events = [event async for event in process.events()]

    result = process.outcome
    assert isinstance(result, TrainingResult), result
    validations = [(e.epoch, e.val_metrics["coco/bbox_mAP"]) for e in events if e.kind == "val"]
    learning = next(i for i, (_, score) in enumerate(validations) if score > 0)
    print(f"val bbox mAP by epoch: {validations}")
    assert result.stopped_early is True, validations
    # the first validation above 0 sets the best, the next has no gain: stop; the zeros before did not count
    assert len(validations) == learning + 2 and result.epochs == validations[-1][0] < EPOCHS, validations
    assert [e.epoch for e in events if e.kind == "epoch"] == list(range(1, result.epochs + 1))
    assert Path(result.best_checkpoint).is_file()
    assert Path(result.best_checkpoint).name.startswith("best_coco_bbox_mAP_epoch_")
    assert result.metrics["val"]["bbox_mAP"] >= 0
