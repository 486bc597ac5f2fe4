"""A model's predictions on a split, scored with pycocotools: COCO bbox metrics overall, per class, per COCO
size and per box size bin of the dataset profile, per-class PR curves at IoU 0.5 with their F1-optimal score
thresholds, then the confusion matrix and per-image error ranking of ``domain/evaluation_analysis.py``.

The overall and per-class numbers are those of a plain ``COCOeval(gt, gt.loadRes(predictions), "bbox")``
over the split's annotation document (per-class AP as mmdet's ``CocoMetric(classwise=True)`` takes it from
the precision array, unrounded). Blocking, and pycocotools prints its progress: stdout is redirected while
it runs, which would also swallow other threads' output, so run it where training's evaluation runs (the
job's child process), not in a thread of the worker.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from common.evaluation_analysis import (
    COCO_KEYS,
    NO_THRESHOLD,
    ClassMetrics,
    EvaluationAnalysis,
    EvaluationInputError,
    PrCurve,
    SizeMetrics,
    Threshold,
)
from services.trainer_worker.adapters.evaluation import detection_metrics
from services.trainer_worker.domain.evaluation_analysis import (
    Box,
    ThresholdChoice,
    confusion_and_errors,
    f1_optimal_threshold,
    pixel_size_area_ranges,
    worst_and_best,
)

DEFAULT_SCORE_THRESHOLD = 0.3  # for a class without a recommended threshold (mmdet's confusion default)
IOU_50 = 0  # index of IoU 0.5 in COCOeval's iouThrs
IOU_75 = 5
ALL_AREAS, MAX_DETS = 0, -1  # indices: area range "all", maxDets 100


def analyze_predictions(
    ground_truth: Mapping[str, Any],
    predictions: Sequence[Mapping[str, Any]],
    *,
    score_threshold: Threshold | None = None,
    gallery_size: int = 5,
) -> EvaluationAnalysis:
    """Everything an evaluation records about ``predictions`` (COCO results) on ``ground_truth`` (a COCO
    annotation document).

    ``score_threshold`` applies to the confusion matrix and the error ranking; by default each class's
    recommended (F1-optimal) threshold, ``DEFAULT_SCORE_THRESHOLD`` for a class without one.

    Raises:
        EvaluationInputError: a prediction names an image or class the ground truth lacks, or is malformed.
    """
    gt = _ground_truth(ground_truth)
    results = _checked_predictions(predictions, gt)
    names = {int(c["id"]): str(c["name"]) for c in gt["categories"]}
    standard = _evaluate(gt, results)
    pixel_gt = copy.deepcopy(gt)
    for ann in pixel_gt["annotations"]:
        ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])  # the profile bins boxes, not masks
    ranges = pixel_size_area_ranges()
    pixel = _evaluate(pixel_gt, results, [(label, lo, hi) for label, lo, hi in ranges])

    classes = tuple(
        _class_metrics(standard, k, cid, names[cid], gt, results) for k, cid in _cat_order(standard)
    )
    if score_threshold is None:
        score_threshold = operating_thresholds(classes)
    confusion, ranked = confusion_and_errors(_boxes_per_image(gt, results), names, score_threshold)
    worst, best = worst_and_best(ranked, gallery_size)
    raw = {f"coco/{key}": float(standard.stats[i]) for i, key in enumerate(COCO_KEYS)}
    raw |= {f"coco/{c.name}_precision": c.ap for c in classes}
    return EvaluationAnalysis(
        metrics=detection_metrics(raw, tuple(c.name for c in classes)),
        classes=classes,
        coco_sizes=_size_metrics(standard, _area_ranges(standard)[1:], gt),
        pixel_sizes=_size_metrics(pixel, list(ranges), pixel_gt),
        confusion=confusion,
        image_errors=ranked,
        worst_images=worst,
        best_images=best,
        images=len(gt["images"]),
        predictions=len(results),
    )


def operating_thresholds(classes: Sequence[ClassMetrics]) -> dict[int, float]:
    """Each class's recommended threshold, ``DEFAULT_SCORE_THRESHOLD`` for a class without one."""
    return {
        c.category_id: DEFAULT_SCORE_THRESHOLD
        if c.recommended_score_threshold == NO_THRESHOLD
        else c.recommended_score_threshold
        for c in classes
    }


def _evaluate(
    gt: dict[str, Any],
    results: list[dict[str, Any]],
    area_ranges: list[tuple[str, float, float]] | None = None,
) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results)) if results else _empty_results(gt)
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        if area_ranges is not None:
            evaluator.params.areaRng = [[0.0, 1e10]] + [[lo, hi] for _, lo, hi in area_ranges]
            evaluator.params.areaRngLbl = ["all"] + [label for label, _, _ in area_ranges]
        evaluator.evaluate()
        evaluator.accumulate()
        if area_ranges is None:
            evaluator.summarize()
    return evaluator


def _empty_results(gt: dict[str, Any]) -> COCO:
    """``loadRes`` cannot take an empty list: a model that found nothing still scores (0)."""
    empty = COCO()
    empty.dataset = {"images": list(gt["images"]), "categories": list(gt["categories"]), "annotations": []}
    empty.createIndex()
    return empty


def _area_ranges(evaluator: COCOeval) -> list[tuple[str, float, float]]:
    params = evaluator.params
    return [(label, lo, hi) for label, (lo, hi) in zip(params.areaRngLbl, params.areaRng, strict=True)]


def _cat_order(evaluator: COCOeval) -> list[tuple[int, int]]:
    return [(k, int(cid)) for k, cid in enumerate(evaluator.params.catIds)]


def _mean_precision(precision: np.ndarray) -> float:
    """COCO's mean over the entries that have ground truth (> -1); -1 without any."""
    valid = precision[precision > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _class_metrics(
    evaluator: COCOeval,
    k: int,
    category_id: int,
    name: str,
    gt: dict[str, Any],
    results: list[dict[str, Any]],
) -> ClassMetrics:
    precision = evaluator.eval["precision"]
    choice = _f1_choice(evaluator, k)
    return ClassMetrics(
        category_id=category_id,
        name=name,
        ground_truth=sum(
            1 for a in gt["annotations"] if a["category_id"] == category_id and not a.get("iscrowd")
        ),
        detections=sum(1 for r in results if r["category_id"] == category_id),
        ap=_mean_precision(precision[:, :, k, ALL_AREAS, MAX_DETS]),
        ap50=_mean_precision(precision[IOU_50, :, k, ALL_AREAS, MAX_DETS]),
        ap75=_mean_precision(precision[IOU_75, :, k, ALL_AREAS, MAX_DETS]),
        recommended_score_threshold=choice.score_threshold,
        f1=choice.f1,
        precision=choice.precision,
        recall=choice.recall,
        pr_curve=PrCurve(
            tuple(float(r) for r in evaluator.params.recThrs),
            tuple(float(p) for p in precision[IOU_50, :, k, ALL_AREAS, MAX_DETS]),
            tuple(float(s) for s in evaluator.eval["scores"][IOU_50, :, k, ALL_AREAS, MAX_DETS]),
        ),
    )


def _f1_choice(evaluator: COCOeval, k: int) -> ThresholdChoice:
    """From COCOeval's own matching at IoU 0.5 (area "all", maxDets 100), ignored detections left out."""
    images = len(evaluator.params.imgIds)
    max_det = evaluator.params.maxDets[MAX_DETS]
    per_image = evaluator.evalImgs[
        k * len(evaluator.params.areaRng) * images : (k * len(evaluator.params.areaRng) + 1) * images
    ]
    scores: list[float] = []
    matched: list[bool] = []
    ground_truth = 0
    for e in per_image:
        if e is None:
            continue
        ground_truth += int(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0))
        keep = ~np.asarray(e["dtIgnore"][IOU_50, :max_det], dtype=bool)
        scores += [float(s) for s, kept in zip(e["dtScores"][:max_det], keep, strict=True) if kept]
        matched += [bool(m) for m in np.asarray(e["dtMatches"][IOU_50, :max_det])[keep] > 0]
    return f1_optimal_threshold(scores, matched, ground_truth)


def _size_metrics(
    evaluator: COCOeval, ranges: list[tuple[str, float, float]], gt: dict[str, Any]
) -> tuple[SizeMetrics, ...]:
    """One entry per range; ``ranges`` are area ranges 1.. of ``evaluator.params.areaRng`` (0 is "all")."""
    precision = evaluator.eval["precision"]
    boxes = [float(a["area"]) for a in gt["annotations"] if not a.get("iscrowd")]
    return tuple(
        SizeMetrics(
            label=label,
            min_area=float(lo),
            max_area=float(hi),
            ground_truth=sum(1 for area in boxes if lo <= area <= hi),
            ap=_mean_precision(precision[:, :, :, a, MAX_DETS]),
            ap50=_mean_precision(precision[IOU_50, :, :, a, MAX_DETS]),
        )
        for a, (label, lo, hi) in enumerate(ranges, start=1)
    )


def _boxes_per_image(
    gt: dict[str, Any], results: list[dict[str, Any]]
) -> dict[int, tuple[list[Box], list[Box]]]:
    images: dict[int, tuple[list[Box], list[Box]]] = {int(i["id"]): ([], []) for i in gt["images"]}
    for a in gt["annotations"]:
        images[int(a["image_id"])][0].append(
            Box(int(a["category_id"]), _bbox(a["bbox"]), 1.0, bool(a.get("iscrowd")))
        )
    for r in results:
        images[int(r["image_id"])][1].append(Box(int(r["category_id"]), _bbox(r["bbox"]), float(r["score"])))
    return images


def _bbox(values: Sequence[Any]) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in values)
    return x, y, w, h


def _ground_truth(document: Mapping[str, Any]) -> dict[str, Any]:
    missing = [
        key for key in ("images", "annotations", "categories") if not isinstance(document.get(key), list)
    ]
    if missing:
        raise EvaluationInputError(f"the ground truth is not a COCO document: no {', '.join(missing)} list")
    gt = copy.deepcopy(dict(document))
    gt.setdefault("info", {})  # loadRes copies it
    gt.setdefault("licenses", [])
    images = {i.get("id") for i in gt["images"]}
    categories = {c.get("id") for c in gt["categories"]}
    for n, ann in enumerate(gt["annotations"], start=1):
        bbox = ann.get("bbox")
        if ann.get("image_id") not in images or ann.get("category_id") not in categories:
            raise EvaluationInputError(
                f"ground truth annotation {n} names an image or class the document lacks"
            )
        if not (isinstance(bbox, list | tuple) and len(bbox) == 4 and all(_finite_number(v) for v in bbox)):
            raise EvaluationInputError(f"ground truth annotation {n}: bbox must be 4 finite numbers")
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
    return gt


def _checked_predictions(
    predictions: Sequence[Mapping[str, Any]], gt: dict[str, Any]
) -> list[dict[str, Any]]:
    images = {i["id"] for i in gt["images"]}
    categories = {c["id"] for c in gt["categories"]}
    out = []
    for n, p in enumerate(predictions, start=1):
        where = f"prediction {n}"
        if not isinstance(p, Mapping):
            raise EvaluationInputError(f"{where} is not an object with image_id, category_id, bbox and score")
        if p.get("image_id") not in images:
            raise EvaluationInputError(
                f"{where}: image_id {p.get('image_id')!s:.40} is not an image of the split"
            )
        if p.get("category_id") not in categories:
            raise EvaluationInputError(
                f"{where}: category_id {p.get('category_id')!s:.40} is not a class of the split"
            )
        bbox, score = p.get("bbox"), p.get("score")
        if not (isinstance(bbox, list | tuple) and len(bbox) == 4 and all(_finite_number(v) for v in bbox)):
            raise EvaluationInputError(f"{where}: bbox must be 4 finite numbers [x, y, width, height]")
        if bbox[2] < 0 or bbox[3] < 0:
            raise EvaluationInputError(f"{where}: bbox width and height must not be negative")
        if not _finite_number(score):
            raise EvaluationInputError(f"{where}: score must be a finite number")
        out.append(
            {
                "image_id": p["image_id"],
                "category_id": p["category_id"],
                "bbox": [float(v) for v in bbox],
                "score": float(score),
            }
        )
    return out


def _finite_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
