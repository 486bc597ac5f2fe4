"""A stored EVALUATION_ANALYSIS document (``to_dict`` through JSON) reads back into the same analysis, and
the report drawn from it (``stored_section``) is the one drawn from the analysis itself."""

from __future__ import annotations

import json

import pytest

from common.evaluation_analysis import EvaluationInputError, analysis_from_dict
from common.evaluation_report import ReportSection, render_report, stored_section
from services.trainer_worker.adapters.coco_evaluation import analyze_predictions
from tests.fixtures.coco_predictions import synthetic_split


@pytest.mark.parametrize("per_class", [True, False])
def test_the_stored_document_reads_back(per_class: bool) -> None:
    gt, predictions = synthetic_split(seed=3)
    analysis = analyze_predictions(gt, predictions, score_threshold=None if per_class else 0.4)
    document = json.loads(json.dumps(analysis.to_dict()))
    back = analysis_from_dict(document)
    assert back.to_dict() == analysis.to_dict()
    assert back.confusion.score_threshold == analysis.confusion.score_threshold  # int keys again
    assert back.recommended_score_thresholds == analysis.recommended_score_thresholds

    section = stored_section("Test split", document, b"\x89PNG a", b"\x89PNG b", {"model": "m"})
    direct = ReportSection("Test split", analysis, b"\x89PNG a", b"\x89PNG b", (), {"model": "m"})
    assert render_report("r", [section]) == render_report("r", [direct])


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"confusion": {}},
        "not a mapping",
        lambda d: d | {"classes": [{"name": "x"}]},
        lambda d: d | {"images": "many"},
        lambda d: d | {"confusion": d["confusion"] | {"counts": [["a"]]}},
    ],
)
def test_anything_else_is_refused(broken: object) -> None:
    gt, predictions = synthetic_split(seed=1, n_images=5)
    document = json.loads(json.dumps(analyze_predictions(gt, predictions).to_dict()))
    data = broken(document) if callable(broken) else broken
    with pytest.raises(EvaluationInputError, match="not an evaluation analysis document"):
        analysis_from_dict(data)  # type: ignore[arg-type]
