"""The test split's analysis after training (runs in the training child, after ``evaluate_training`` scored
the best checkpoint on test): the raw predictions mmdet's ``CocoMetric`` wrote, scored again with
``coco_evaluation.analyze_predictions`` (pycocotools, unrounded), and the files a run stores from it: the
predictions, the analysis JSON, confusion matrix and PR curves PNGs, and the prediction gallery (the
``GALLERY_SIZE`` worst and best test images with ground truth and predictions drawn, one PNG each, named by
``common.evaluation_report.gallery_filename``).

The recorded test metrics are this analysis's numbers, so they equal an independent ``COCOeval`` over the
stored predictions JSON and the split's annotation file. pycocotools prints its progress; the analysis
redirects stdout while it runs, which is harmless here (the child process, not a worker thread).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREDICTIONS_FILE = "test_predictions.json"  # COCO results JSON
ANALYSIS_FILE = "test_analysis.json"  # EvaluationAnalysis.to_dict()
CONFUSION_FILE = "test_confusion_matrix.png"
PR_CURVES_FILE = "test_pr_curves.png"
GALLERY_GLOB = "test_gallery_*.png"  # common.evaluation_report.gallery_filename
GALLERY_SIZE = 5  # worst and best images each
GALLERY_MAX_SIDE = 512  # px: small enough to store and embed ten of them
PREDICTIONS_PREFIX = "test_predictions"  # CocoMetric's outfile_prefix: it writes <prefix>.bbox.json


@dataclass(frozen=True)
class SplitAnalysis:
    metrics: dict[str, Any]  # evaluation.detection_metrics' shape plus recommended_score_threshold per class
    files: tuple[Path, ...]


def predictions_prefix(eval_dir: Path) -> str:
    """The ``outfile_prefix`` the test split's ``CocoMetric`` gets, so its COCO results JSON stays."""
    return str(eval_dir / PREDICTIONS_PREFIX)


def analyze_test_split(
    ann_file: Path, eval_dir: Path, work_dir: Path, image_root: Path | None = None
) -> SplitAnalysis:
    """Scores the predictions ``CocoMetric`` dumped under ``eval_dir`` on ``ann_file`` and writes the
    predictions, analysis JSON, confusion matrix and PR curves into ``work_dir``, and the gallery PNGs when
    the split's images are at hand (``image_root``)."""
    from services.trainer_worker.adapters.coco_evaluation import analyze_predictions
    from services.trainer_worker.adapters.evaluation_plots import (
        confusion_matrix_png,
        gallery,
        gallery_files,
        open_split_image,
        pr_curves_png,
    )

    dumped = Path(f"{predictions_prefix(eval_dir)}.bbox.json")
    raw = dumped.read_bytes() if dumped.is_file() else b"[]"
    predictions = json.loads(raw)
    ground_truth = json.loads(ann_file.read_text())
    analysis = analyze_predictions(ground_truth, predictions, gallery_size=GALLERY_SIZE)
    predictions_path = work_dir / PREDICTIONS_FILE
    predictions_path.write_bytes(raw)  # the bytes scored, as mmdet wrote them
    analysis_path = work_dir / ANALYSIS_FILE
    analysis_path.write_text(json.dumps(analysis.to_dict(), indent=2, ensure_ascii=False))
    confusion_path = work_dir / CONFUSION_FILE
    confusion_path.write_bytes(confusion_matrix_png(analysis.confusion))
    curves_path = work_dir / PR_CURVES_FILE
    curves_path.write_bytes(pr_curves_png(analysis.classes))
    drawn: list[Path] = []
    if image_root is not None:
        try:
            items = gallery(
                analysis, ground_truth, predictions, open_split_image(image_root), max_side=GALLERY_MAX_SIDE
            )
        except (OSError, ValueError):  # an image unreadable here: the run keeps its numbers, without pictures
            items = ()
        for name, png in gallery_files(items).items():
            (work_dir / name).write_bytes(png)
            drawn.append(work_dir / name)
    metrics = dict(analysis.metrics)
    metrics["recommended_score_threshold"] = {c.name: c.recommended_score_threshold for c in analysis.classes}
    return SplitAnalysis(metrics, (predictions_path, analysis_path, confusion_path, curves_path, *drawn))
