"""The evaluation analysis: COCO metrics against an independent COCOeval, size bins against the dataset
profile, the confusion matrix and error ranking on a hand-built case, F1-optimal thresholds."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from common.evaluation_analysis import COCO_KEYS, NO_THRESHOLD, EvaluationInputError
from services.trainer_worker.adapters.coco_evaluation import (
    DEFAULT_SCORE_THRESHOLD,
    analyze_predictions,
    operating_thresholds,
)
from services.trainer_worker.domain.evaluation_analysis import (
    Box,
    confusion_and_errors,
    f1_optimal_threshold,
    worst_and_best,
)
from services.trainer_worker.domain.profile import SIZE_BIN_LABELS, box_side, size_bin
from tests.fixtures.coco_predictions import HOSTILE_NAME, synthetic_split


def independent_cocoeval(
    tmp_path: Path, gt: dict[str, Any], preds: list[dict[str, Any]], **params: Any
) -> Any:
    """COCOeval as anyone would run it: from the two JSON files."""
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "gt.json"))
        evaluator = COCOeval(coco, coco.loadRes(str(tmp_path / "preds.json")), "bbox")
        for key, value in params.items():
            setattr(evaluator.params, key, value)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


@pytest.mark.parametrize("seed", [0, 1])
def test_overall_and_per_class_map_equal_an_independent_cocoeval(tmp_path: Path, seed: int) -> None:
    gt, preds = synthetic_split(seed)
    analysis = analyze_predictions(gt, preds)

    stats = independent_cocoeval(tmp_path, gt, preds)
    assert stats[0] > 0.1  # a meaningful case, not all zeros
    for i, key in enumerate(COCO_KEYS):
        assert analysis.metrics[key] == pytest.approx(stats[i], abs=1e-6), key
    for c in analysis.classes:
        alone = independent_cocoeval(tmp_path, gt, preds, catIds=[c.category_id])
        assert c.ap == pytest.approx(alone[0], abs=1e-6), c.name
        assert c.ap50 == pytest.approx(alone[1], abs=1e-6), c.name
        assert c.ap75 == pytest.approx(alone[2], abs=1e-6), c.name
        assert analysis.metrics["per_class_ap"][c.name] == pytest.approx(alone[0], abs=1e-6)  # type: ignore[index]
    by_name = {c.name: c for c in analysis.classes}
    assert by_name["never annotated"].ap == -1 and by_name["never annotated"].detections > 0
    assert by_name[HOSTILE_NAME].ap > 0
    # by default the confusion matrix is taken at each class's recommended threshold
    assert analysis.confusion.score_threshold == operating_thresholds(analysis.classes)
    assert by_name["never annotated"].recommended_score_threshold == NO_THRESHOLD
    assert analysis.confusion.score_threshold[9] == DEFAULT_SCORE_THRESHOLD  # type: ignore[index]
    assert 0 < by_name["tyre"].recommended_score_threshold == analysis.confusion.score_threshold[1]  # type: ignore[index]
    assert [s.ap for s in analysis.coco_sizes] == pytest.approx(list(stats[3:6]), abs=1e-6)


def test_pixel_size_bins_are_the_profiles_bins_and_match_a_cocoeval_per_range(tmp_path: Path) -> None:
    gt, preds = synthetic_split(2)
    analysis = analyze_predictions(gt, preds)

    boxes = [a for a in gt["annotations"] if not a["iscrowd"]]
    profile = Counter(size_bin(box_side(a["bbox"][2], a["bbox"][3])) for a in boxes)
    assert [s.label for s in analysis.pixel_sizes] == list(SIZE_BIN_LABELS)
    assert [s.ground_truth for s in analysis.pixel_sizes] == [profile[k] for k in range(len(SIZE_BIN_LABELS))]
    assert all(s.ground_truth for s in analysis.pixel_sizes)  # the fixture fills every bin
    by_box = json.loads(json.dumps(gt))
    for a in by_box["annotations"]:
        a["area"] = a["bbox"][2] * a["bbox"][3]
    for s in analysis.pixel_sizes:
        alone = independent_cocoeval(
            tmp_path, by_box, preds, areaRng=[[s.min_area, s.max_area]], areaRngLbl=["all"]
        )
        assert (s.ap, s.ap50) == pytest.approx((alone[0], alone[1]), abs=1e-6), s.label


def test_a_box_of_side_exactly_8_is_in_the_8_16_bin_as_in_the_profile() -> None:
    gt = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 50, "height": 50}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 8, 8], "area": 64, "iscrowd": 0}
        ],
    }
    analysis = analyze_predictions(
        gt, [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 8, 8], "score": 0.9}]
    )
    counts = {s.label: s.ground_truth for s in analysis.pixel_sizes}
    assert SIZE_BIN_LABELS[size_bin(8.0)] == "8-16"
    assert counts["8-16"] == 1 and counts["<8"] == 0
    assert {s.label: s.ap for s in analysis.pixel_sizes}["8-16"] == pytest.approx(1.0)


def box(cat: int, x: float, y: float, score: float = 1.0, side: float = 10, crowd: bool = False) -> Box:
    return Box(cat, (x, y, side, side), score, crowd)


CAT, DOG = 1, 2
HAND_BUILT = {
    # a true positive cat; a cat predicted on the dog (a confusion)
    1: ([box(CAT, 0, 0), box(DOG, 50, 50)], [box(CAT, 1, 0, 0.9), box(CAT, 50, 51, 0.8)]),
    2: ([box(CAT, 0, 0)], []),  # a missed cat
    # a dog on nothing (background); a cat below the threshold; a dog inside a crowd region (ignored)
    3: (
        [box(DOG, 100, 100, side=50, crowd=True)],
        [box(DOG, 20, 20, 0.7), box(CAT, 70, 70, 0.2), box(DOG, 110, 110, 0.9, side=20)],
    ),
    # a true positive dog; a lower duplicate dog and a cat on the same box are background false positives
    4: ([box(DOG, 0, 0)], [box(DOG, 0, 0, 0.95), box(DOG, 1, 1, 0.6), box(CAT, 0, 1, 0.55)]),
    5: ([box(CAT, 30, 30)], [box(CAT, 30, 30, 0.99)]),  # perfect
}
NAMES = {CAT: "cat", DOG: "dog"}


def test_confusion_matrix_counts_a_hand_built_case() -> None:
    matrix, ranked = confusion_and_errors(HAND_BUILT, NAMES, 0.5)

    #                            predicted: cat dog background
    assert matrix.counts == ((2, 0, 1), (1, 1, 0), (1, 2, 0))  # rows: cat, dog, background (ground truth)
    assert matrix.count(DOG, CAT) == 1 and matrix.count(None, DOG) == 2 and matrix.count(CAT, None) == 1
    assert matrix.to_dict()["labels"] == ["cat", "dog", "background"]
    assert [(e.image_id, e.true_positives, e.false_positives, e.false_negatives) for e in ranked] == [
        (1, 1, 1, 1),  # 2 errors, 1 right, lower id first
        (4, 1, 2, 0),
        (2, 0, 0, 1),  # 1 error
        (3, 0, 1, 0),
        (5, 1, 0, 0),
    ]
    assert worst_and_best(ranked, 2) == ((1, 4), (5,))


def test_the_score_threshold_decides_which_detections_count() -> None:
    low, _ = confusion_and_errors(HAND_BUILT, NAMES, 0.1)
    assert low.counts[2] == (2, 2, 0)  # the cat at 0.2 now counts as a background false positive

    per_class, _ = confusion_and_errors(HAND_BUILT, NAMES, {CAT: 0.9, DOG: 0.5})
    # cats below 0.9 drop out: the dog of image 1 is missed instead of confused; image 4's cat is gone
    assert per_class.counts == ((2, 0, 1), (0, 1, 1), (0, 2, 0))


def test_the_adapter_builds_the_same_confusion_matrix_from_coco_documents() -> None:
    images, annotations, predictions = [], [], []
    for image_id, (gts, dets) in HAND_BUILT.items():
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 200, "height": 200})
        for g in gts:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": g.category_id,
                    "bbox": list(g.bbox),
                    "area": g.bbox[2] * g.bbox[3],
                    "iscrowd": int(g.iscrowd),
                }
            )
        predictions += [
            {"image_id": image_id, "category_id": d.category_id, "bbox": list(d.bbox), "score": d.score}
            for d in dets
        ]
    gt = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    analysis = analyze_predictions(gt, predictions, score_threshold=0.5, gallery_size=2)
    assert analysis.confusion.counts == ((2, 0, 1), (1, 1, 0), (1, 2, 0))
    assert (analysis.worst_images, analysis.best_images) == ((1, 4), (5,))
    json.dumps(analysis.to_dict(), allow_nan=False)


def test_f1_optimal_threshold_of_a_constructed_class() -> None:
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    hits = [True, True, False, True, False, False]
    choice = f1_optimal_threshold(scores[::-1], hits[::-1], ground_truth=4)  # the order given does not matter
    assert (choice.score_threshold, choice.precision, choice.recall) == (0.6, 0.75, 0.75)
    assert choice.f1 == pytest.approx(0.75)


def test_f1_keeps_equal_scores_together_and_prefers_the_higher_threshold_on_a_tie() -> None:
    tied = f1_optimal_threshold([0.9, 0.7, 0.7], [True, True, False], ground_truth=2)
    assert (tied.score_threshold, tied.f1) == (0.7, pytest.approx(0.8))  # not F1 1.0 at "half of 0.7"
    equal_f1 = f1_optimal_threshold(
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [True, False, False, False, False, True], 4
    )
    assert (equal_f1.score_threshold, equal_f1.f1) == (0.9, pytest.approx(0.4))  # 0.4 also gives F1 0.4
    assert f1_optimal_threshold([0.5], [False], 3).score_threshold == NO_THRESHOLD
    assert f1_optimal_threshold([], [], 3).score_threshold == NO_THRESHOLD


def test_recommended_thresholds_come_from_cocos_matching_per_class() -> None:
    scores = {0.9: True, 0.8: True, 0.7: False, 0.6: True, 0.5: False, 0.4: False}
    images, annotations, predictions = [], [], []
    for image_id, (score, hit) in enumerate(scores.items(), start=1):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 100, "height": 100})
        if image_id <= 4:  # 4 boxes of class 5; image 3's (a prediction beside it at 0.7) is missed
            annotations.append(
                {
                    "id": image_id,
                    "image_id": image_id,
                    "category_id": 5,
                    "bbox": [10, 10, 20, 20],
                    "area": 400,
                    "iscrowd": 0,
                }
            )
        where = [10, 10, 20, 20] if hit else [60, 60, 20, 20]
        predictions.append({"image_id": image_id, "category_id": 5, "bbox": where, "score": score})
        annotations.append(
            {
                "id": 100 + image_id,
                "image_id": image_id,
                "category_id": 2,
                "bbox": [40, 40, 10, 10],
                "area": 100,
                "iscrowd": 0,
            }
        )
        predictions.append({"image_id": image_id, "category_id": 2, "bbox": [40, 40, 10, 10], "score": 0.3})
    gt = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 2, "name": "b"}, {"id": 5, "name": "a"}],
    }
    analysis = analyze_predictions(gt, predictions)
    assert analysis.recommended_score_thresholds == {2: 0.3, 5: 0.6}
    a = analysis.classes[1]
    assert (a.precision, a.recall, a.ground_truth, a.detections) == (0.75, 0.75, 4, 6)


@pytest.mark.parametrize(
    ("prediction", "message"),
    [
        (
            {"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5},
            "image_id 99 is not an image",
        ),
        (
            {"image_id": 1, "category_id": 42, "bbox": [0, 0, 1, 1], "score": 0.5},
            "category_id 42 is not a class",
        ),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "score": 0.5}, "bbox must be 4 finite numbers"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1], "score": 0.5}, "must not be negative"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": float("nan")}, "score must be"),
    ],
)
def test_predictions_that_do_not_fit_the_split_are_refused_with_the_reason(
    prediction: Any, message: str
) -> None:
    gt, _ = synthetic_split(0, n_images=2)
    with pytest.raises(EvaluationInputError, match=message) as raised:
        analyze_predictions(gt, [prediction])
    assert str(raised.value).startswith("prediction 1")


def test_a_model_that_found_nothing_scores_zero() -> None:
    gt, _ = synthetic_split(0, n_images=5)
    analysis = analyze_predictions(gt, [])
    assert analysis.metrics["bbox_mAP"] == 0.0
    assert all(c.recommended_score_threshold == NO_THRESHOLD for c in analysis.classes)
    assert sum(analysis.confusion.counts[-1]) == 0  # nothing predicted
