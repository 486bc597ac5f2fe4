"""What a detector gets right and wrong on a split, beyond COCO mAP: a confusion matrix with a background
row and column, the F1-optimal score threshold per class and a per-image error ranking.

Matching (confusion matrix, per-image errors) is one-to-one at IoU >= 0.5 among the detections at or above
the score threshold, highest score first: a detection first takes the unmatched ground truth box of its own
class with the highest IoU (a true positive, as COCO matches), else the unmatched box of another class with
the highest IoU (a confusion); a detection matched to nothing is a background false positive, a ground truth
box left unmatched is missed (background column). So every ground truth box is counted once in its row and
every kept detection once in its column. Unlike mmdet's ``confusion_matrix.py``, one detection never counts
for several boxes. Crowd boxes (``iscrowd``) are not counted; a detection lying at least half inside one is
ignored (COCO's rule).

Pure logic on plain records (numpy only); ``adapters/coco_evaluation.py`` feeds it from COCO documents. The
result types (``EvaluationAnalysis`` and its parts) live in ``common/evaluation_analysis.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from common.evaluation_analysis import (
    IOU_THRESHOLD,
    NO_THRESHOLD,
    ConfusionMatrix,
    ImageErrors,
    Threshold,
    threshold_for,
)
from services.trainer_worker.domain.profile import SIZE_BIN_EDGES, SIZE_BIN_LABELS


@dataclass(frozen=True)
class Box:
    category_id: int
    bbox: tuple[float, float, float, float]  # x, y, w, h in pixels
    score: float = 1.0  # ground truth: 1
    iscrowd: bool = False


@dataclass(frozen=True)
class ThresholdChoice:
    """The score threshold with the highest F1 (ties: the highest threshold); without any true positive,
    ``NO_THRESHOLD`` and zeros (no recommendation: the consumer keeps its default)."""

    score_threshold: float
    f1: float
    precision: float
    recall: float


def pixel_size_area_ranges() -> tuple[tuple[str, float, float], ...]:
    """The profile's box size bins as COCOeval area ranges [lo², hi²) of bbox ``w * h``.

    COCOeval keeps a box when ``lo <= area <= hi``; the upper bound is one float below hi² so that a box of
    side exactly 8 is in "8-16", as ``profile.size_bin`` puts it.
    """
    edges = (0.0, *(float(e) ** 2 for e in SIZE_BIN_EDGES), 1e10)
    return tuple(
        (label, edges[k], math.nextafter(edges[k + 1], 0.0) if k + 1 < len(SIZE_BIN_LABELS) else edges[k + 1])
        for k, label in enumerate(SIZE_BIN_LABELS)
    )


def iou_matrix(detections: Sequence[Box], ground_truth: Sequence[Box], *, crowd: bool = False) -> np.ndarray:
    """IoU of every detection (rows) with every box (columns); ``crowd``: intersection over the detection's
    area (COCO's rule for crowd regions)."""
    if not detections or not ground_truth:
        return np.zeros((len(detections), len(ground_truth)))
    d = np.array([b.bbox for b in detections], dtype=float)
    g = np.array([b.bbox for b in ground_truth], dtype=float)
    left = np.maximum(d[:, None, 0], g[None, :, 0])
    top = np.maximum(d[:, None, 1], g[None, :, 1])
    right = np.minimum(d[:, None, 0] + d[:, None, 2], g[None, :, 0] + g[None, :, 2])
    bottom = np.minimum(d[:, None, 1] + d[:, None, 3], g[None, :, 1] + g[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    d_area = (d[:, 2] * d[:, 3])[:, None]
    union = d_area if crowd else d_area + (g[:, 2] * g[:, 3])[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


@dataclass(frozen=True)
class _Match:
    pairs: tuple[tuple[int, int], ...]  # (ground truth category, detected category), same: a true positive
    false_positives: tuple[int, ...]  # detected categories matched to nothing
    missed: tuple[int, ...]  # ground truth categories matched to nothing


def match_image(ground_truth: Sequence[Box], detections: Sequence[Box], score_threshold: Threshold) -> _Match:
    """One-to-one matching of one image's boxes (see the module docstring)."""
    boxes = [b for b in ground_truth if not b.iscrowd]
    crowds = [b for b in ground_truth if b.iscrowd]
    kept = sorted(
        (d for d in detections if d.score >= threshold_for(score_threshold, d.category_id)),
        key=lambda d: -d.score,  # sorted() is stable: equal scores keep the document's order
    )
    ious = iou_matrix(kept, boxes)
    in_crowd = iou_matrix(kept, crowds, crowd=True).max(axis=1, initial=0.0) >= IOU_THRESHOLD
    taken = np.zeros(len(boxes), dtype=bool)
    same = np.array([[d.category_id == b.category_id for b in boxes] for d in kept], dtype=bool)
    matched: list[int | None] = [None] * len(kept)
    for same_class in (True, False):
        for i in range(len(kept)):
            if matched[i] is not None or not boxes:
                continue
            candidates = np.where(taken | (same[i] != same_class), -1.0, ious[i])
            j = len(boxes) - 1 - int(np.argmax(candidates[::-1]))  # equal IoU: the later box, as COCO
            if candidates[j] >= IOU_THRESHOLD:
                taken[j], matched[i] = True, j
    pairs = tuple((boxes[j].category_id, kept[i].category_id) for i, j in enumerate(matched) if j is not None)
    unmatched = tuple(kept[i].category_id for i, j in enumerate(matched) if j is None and not in_crowd[i])
    missed = tuple(box.category_id for j, box in enumerate(boxes) if not taken[j])
    return _Match(pairs, unmatched, missed)


def confusion_and_errors(
    images: Mapping[int, tuple[Sequence[Box], Sequence[Box]]],
    categories: Mapping[int, str],
    score_threshold: Threshold,
) -> tuple[ConfusionMatrix, tuple[ImageErrors, ...]]:
    """``images``: image id → (ground truth, detections). Errors come worst first (see ``rank_images``)."""
    ids = tuple(sorted(categories))
    index = {cid: k for k, cid in enumerate(ids)}
    bg = len(ids)
    counts = np.zeros((bg + 1, bg + 1), dtype=np.int64)
    errors = []
    for image_id in sorted(images):
        gts, dets = images[image_id]
        match = match_image(gts, dets, score_threshold)
        for g, p in match.pairs:
            counts[index[g], index[p]] += 1
        for p in match.false_positives:
            counts[bg, index[p]] += 1
        for g in match.missed:
            counts[index[g], bg] += 1
        tp = sum(1 for g, p in match.pairs if g == p)
        confused = len(match.pairs) - tp
        errors.append(
            ImageErrors(
                image_id, tp, confused + len(match.false_positives), confused + len(match.missed), confused
            )
        )
    matrix = ConfusionMatrix(
        ids,
        tuple(categories[c] for c in ids),
        tuple(tuple(int(v) for v in row) for row in counts),
        score_threshold,
    )
    return matrix, rank_images(errors)


def rank_images(errors: Iterable[ImageErrors]) -> tuple[ImageErrors, ...]:
    """Most errors first; ties: fewer true positives first, then the lower image id."""
    return tuple(sorted(errors, key=lambda e: (-e.errors, e.true_positives, e.image_id)))


def worst_and_best(ranked: Sequence[ImageErrors], n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ``n`` worst image ids (with at least one error) and the ``n`` best ones (fewest errors, most true
    positives, lower id first; images without any box or detection are not shown as "best")."""
    worst = tuple(e.image_id for e in ranked if e.errors)[:n]
    best_order = sorted(ranked, key=lambda e: (e.errors, -e.true_positives, e.image_id))
    best = tuple(e.image_id for e in best_order if e.true_positives and e.image_id not in worst)[:n]
    return worst, best


def f1_optimal_threshold(
    scores: Sequence[float], true_positive: Sequence[bool], ground_truth: int
) -> ThresholdChoice:
    """The F1-optimal score threshold of one class (keep a detection when ``score >= threshold``).

    ``scores``/``true_positive``: the class's detections as COCO matched them at IoU 0.5 (ignored ones left
    out); ``ground_truth``: its non-ignored boxes. Only thresholds at a detection's score are candidates, and
    equal scores are kept or dropped together.
    """
    if not scores or ground_truth <= 0:
        return ThresholdChoice(NO_THRESHOLD, 0.0, 0.0, 0.0)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
    s = np.asarray(scores, dtype=float)[order]
    tp = np.cumsum(np.asarray(true_positive, dtype=bool)[order])
    kept = np.arange(1, len(s) + 1)
    last_of_tie = np.append(s[1:] != s[:-1], True)
    precision, recall = tp / kept, tp / ground_truth
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(tp > 0, 2 * precision * recall / (precision + recall), 0.0)
    f1 = np.where(last_of_tie, f1, -1.0)
    best = int(np.argmax(f1))  # the first maximum: the highest threshold among equal F1
    if f1[best] <= 0:
        return ThresholdChoice(NO_THRESHOLD, 0.0, 0.0, 0.0)
    return ThresholdChoice(float(s[best]), float(f1[best]), float(precision[best]), float(recall[best]))
