"""A detector's analysis on a split as data: COCO metrics overall / per class / per size, per-class PR curves
and recommended score thresholds, the confusion matrix with a background row and column, and the per-image
error ranking; ``EvaluationAnalysis.to_dict`` is the stored EVALUATION_ANALYSIS document and
``analysis_from_dict`` reads it back.

The one home of the document's shape, shared by the trainer worker (which computes it:
the worker's ``domain/evaluation_analysis.py`` matches boxes, ``adapters/coco_evaluation.py`` scores)
and by readers of stored analyses (``common/evaluation_report.py``, ``ravenctl models report``). Plain Python.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

COCO_KEYS = ("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m", "bbox_mAP_l")
IOU_THRESHOLD = 0.5
BACKGROUND = "background"
NO_THRESHOLD = -1.0  # a class without a true positive gets no recommended threshold
Threshold = float | Mapping[int, float]  # one score threshold, or one per category id


class EvaluationInputError(ValueError):
    """Predictions or ground truth that cannot be evaluated; the message says what to fix."""


@dataclass(frozen=True)
class ImageErrors:
    image_id: int
    true_positives: int
    false_positives: int  # confused with another class or matched to nothing
    false_negatives: int  # confused or missed
    confusions: int

    @property
    def errors(self) -> int:
        return self.false_positives + self.false_negatives


@dataclass(frozen=True)
class ConfusionMatrix:
    """``counts[g][p]``: ground truth class ``g`` (last row: background) predicted as ``p`` (last column:
    background, i.e. missed). Index k < len(category_ids) is ``category_ids[k]``."""

    category_ids: tuple[int, ...]
    names: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    score_threshold: Threshold
    iou_threshold: float = IOU_THRESHOLD

    def count(self, ground_truth: int | None, predicted: int | None) -> int:
        """Category ids, ``None`` for background."""
        return self.counts[self._index(ground_truth)][self._index(predicted)]

    def _index(self, category_id: int | None) -> int:
        return len(self.category_ids) if category_id is None else self.category_ids.index(category_id)

    def to_dict(self) -> dict[str, object]:
        threshold = self.score_threshold
        return {
            "labels": [*self.names, BACKGROUND],
            "category_ids": list(self.category_ids),
            "counts": [list(row) for row in self.counts],
            "score_threshold": dict(threshold) if isinstance(threshold, Mapping) else threshold,
            "iou_threshold": self.iou_threshold,
        }


@dataclass(frozen=True)
class PrCurve:
    recall: tuple[float, ...]
    precision: tuple[
        float, ...
    ]  # COCO's interpolated precision at IoU 0.5: 0 past the highest recall reached
    scores: tuple[float, ...]  # the score threshold that reaches each recall point (0 past the highest)


@dataclass(frozen=True)
class ClassMetrics:
    category_id: int
    name: str
    ground_truth: int  # boxes in the split, crowd excluded
    detections: int
    ap: float  # COCO AP@[.5:.95], -1 without ground truth
    ap50: float
    ap75: float
    recommended_score_threshold: float
    f1: float
    precision: float  # at the recommended threshold
    recall: float
    pr_curve: PrCurve


@dataclass(frozen=True)
class SizeMetrics:
    label: str
    min_area: float
    max_area: float
    ground_truth: int
    ap: float  # -1 without ground truth in the range
    ap50: float


@dataclass(frozen=True)
class EvaluationAnalysis:
    metrics: dict[str, object]  # COCO_KEYS plus per_class_ap {name: AP}: the shape training records
    classes: tuple[ClassMetrics, ...]
    coco_sizes: tuple[SizeMetrics, ...]  # COCO small / medium / large (annotation ``area``)
    pixel_sizes: tuple[SizeMetrics, ...]  # the dataset profile's bins of sqrt(w * h)
    confusion: ConfusionMatrix
    image_errors: tuple[ImageErrors, ...]  # every image, worst first
    worst_images: tuple[int, ...]
    best_images: tuple[int, ...]
    images: int
    predictions: int

    @property
    def recommended_score_thresholds(self) -> dict[int, float]:
        return {c.category_id: c.recommended_score_threshold for c in self.classes}

    def to_dict(self) -> dict[str, object]:
        return finite(asdict(self) | {"confusion": self.confusion.to_dict()})


def finite(data: Any) -> Any:
    """JSON has no NaN/inf: they become -1 like COCO's "no data"; tuples become lists."""
    if isinstance(data, Mapping):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return -1.0
    return data


def threshold_for(threshold: Threshold, category_id: int) -> float:
    """The score threshold of a category (0 for one a mapping does not name)."""
    if isinstance(threshold, Mapping):
        return float(threshold.get(category_id, 0.0))
    return float(threshold)


def analysis_from_dict(data: Mapping[str, Any]) -> EvaluationAnalysis:
    """The inverse of ``EvaluationAnalysis.to_dict``: a stored EVALUATION_ANALYSIS document read back.

    Raises:
        EvaluationInputError: ``data`` is not such a document (a field missing or of the wrong type).
    """
    try:
        confusion = data["confusion"]
        threshold = confusion["score_threshold"]
        return EvaluationAnalysis(
            metrics=dict(data["metrics"]),
            classes=tuple(_class_metrics(c) for c in data["classes"]),
            coco_sizes=tuple(_size_metrics(s) for s in data["coco_sizes"]),
            pixel_sizes=tuple(_size_metrics(s) for s in data["pixel_sizes"]),
            confusion=ConfusionMatrix(
                category_ids=tuple(int(i) for i in confusion["category_ids"]),
                names=tuple(str(n) for n in confusion["labels"][:-1]),  # the last label is background
                counts=tuple(tuple(int(v) for v in row) for row in confusion["counts"]),
                score_threshold={int(k): float(v) for k, v in threshold.items()}  # JSON keys are strings
                if isinstance(threshold, Mapping)
                else float(threshold),
                iou_threshold=float(confusion["iou_threshold"]),
            ),
            image_errors=tuple(
                ImageErrors(
                    int(e["image_id"]),
                    int(e["true_positives"]),
                    int(e["false_positives"]),
                    int(e["false_negatives"]),
                    int(e["confusions"]),
                )
                for e in data["image_errors"]
            ),
            worst_images=tuple(int(i) for i in data["worst_images"]),
            best_images=tuple(int(i) for i in data["best_images"]),
            images=int(data["images"]),
            predictions=int(data["predictions"]),
        )
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise EvaluationInputError(
            "not an evaluation analysis document: a field is missing or has the wrong type"
        ) from exc


def _class_metrics(c: Mapping[str, Any]) -> ClassMetrics:
    curve = c["pr_curve"]
    return ClassMetrics(
        category_id=int(c["category_id"]),
        name=str(c["name"]),
        ground_truth=int(c["ground_truth"]),
        detections=int(c["detections"]),
        ap=float(c["ap"]),
        ap50=float(c["ap50"]),
        ap75=float(c["ap75"]),
        recommended_score_threshold=float(c["recommended_score_threshold"]),
        f1=float(c["f1"]),
        precision=float(c["precision"]),
        recall=float(c["recall"]),
        pr_curve=PrCurve(*(tuple(float(v) for v in curve[k]) for k in ("recall", "precision", "scores"))),
    )


def _size_metrics(s: Mapping[str, Any]) -> SizeMetrics:
    return SizeMetrics(
        str(s["label"]),
        float(s["min_area"]),
        float(s["max_area"]),
        int(s["ground_truth"]),
        float(s["ap"]),
        float(s["ap50"]),
    )
