"""The test split's analysis files as the training child writes them, and the thresholds' way into the
published ``EvaluationResults`` (pure: real pycocotools and matplotlib on a synthetic split, no training)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from services.trainer_worker.adapters.split_analysis import (
    ANALYSIS_FILE,
    CONFUSION_FILE,
    PR_CURVES_FILE,
    PREDICTIONS_FILE,
    analyze_test_split,
    predictions_prefix,
)
from services.trainer_worker.service_layer.results import evaluation_results
from tests.fixtures.coco_predictions import synthetic_split


def test_analysis_files_and_metrics_match_an_independent_cocoeval(tmp_path: Path) -> None:
    ground_truth, predictions = synthetic_split(seed=4)
    ann_file = tmp_path / "test.json"
    ann_file.write_text(json.dumps({"info": {}, "licenses": [], **ground_truth}))
    eval_dir = tmp_path / "eval_test"
    eval_dir.mkdir()
    Path(f"{predictions_prefix(eval_dir)}.bbox.json").write_text(json.dumps(predictions))

    result = analyze_test_split(ann_file, eval_dir, tmp_path)

    assert [p.name for p in result.files] == [PREDICTIONS_FILE, ANALYSIS_FILE, CONFUSION_FILE, PR_CURVES_FILE]
    assert json.loads((tmp_path / PREDICTIONS_FILE).read_text()) == predictions
    for png in (CONFUSION_FILE, PR_CURVES_FILE):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(ann_file))
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(str(tmp_path / PREDICTIONS_FILE)), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert result.metrics["bbox_mAP"] == pytest.approx(float(evaluator.stats[0]), abs=1e-6)
    assert result.metrics["bbox_mAP_50"] == pytest.approx(float(evaluator.stats[1]), abs=1e-6)

    analysis = json.loads((tmp_path / ANALYSIS_FILE).read_text())
    recommended = {c["name"]: c["recommended_score_threshold"] for c in analysis["classes"]}
    assert result.metrics["recommended_score_threshold"] == recommended
    assert recommended["never annotated"] == -1.0  # no ground truth, so no true positive
    assert 0.0 < recommended["tyre"] <= 1.0

    published = evaluation_results({"val": result.metrics | {"recommended_score_threshold": {}},
                                    "test": result.metrics})  # fmt: skip
    carried = {c.class_name: c.recommended_score_threshold for c in published.test.per_class_ap}
    assert carried == recommended
    assert not any(c.HasField("recommended_score_threshold") for c in published.val.per_class_ap)


def test_no_dumped_predictions_is_an_empty_analysis(tmp_path: Path) -> None:
    ground_truth, _ = synthetic_split(seed=1, n_images=5)
    ann_file = tmp_path / "test.json"
    ann_file.write_text(json.dumps(ground_truth))
    result = analyze_test_split(ann_file, tmp_path / "missing", tmp_path)
    assert json.loads((tmp_path / PREDICTIONS_FILE).read_text()) == []
    assert result.metrics["bbox_mAP"] in (0.0, -1.0)
    assert set(result.metrics["recommended_score_threshold"].values()) == {-1.0}
