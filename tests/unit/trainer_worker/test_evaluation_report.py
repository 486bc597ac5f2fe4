"""Pictures and the HTML report of an evaluation: valid PNGs, boxes drawn where and how they should be,
hostile category names shown as text."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from common.evaluation_report import GROUND_TRUTH_COLOUR, PREDICTION_COLOUR, MetricsSection, render_report
from services.trainer_worker.adapters.coco_evaluation import analyze_predictions
from services.trainer_worker.adapters.evaluation_plots import (
    build_section,
    confusion_matrix_png,
    gallery,
    gallery_png,
    open_split_image,
    pr_curves_png,
)
from services.trainer_worker.domain.evaluation_analysis import Box
from tests.fixtures.coco_predictions import HOSTILE_NAME, synthetic_split

# mathtext ($...$, an unknown command) and a leading "_" (matplotlib hides such legend labels)
MATPLOTLIB_HOSTILE = r"_$\undefinedcommand{x$ & co"
HOSTILE_CONTEXT = '"><img src=x onerror=alert(1)>'


def hostile_split() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    gt, preds = synthetic_split(3)
    gt["categories"][0]["name"] = MATPLOTLIB_HOSTILE
    return gt, preds


def blank(record: Any) -> Image.Image:
    return Image.new("RGB", (record["width"], record["height"]), (0, 0, 0))


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()  # decodes every pixel: a truncated file fails here
    return image


def test_confusion_matrix_and_pr_curves_are_valid_pngs_even_with_hostile_names() -> None:
    gt, preds = hostile_split()
    analysis = analyze_predictions(gt, preds)

    matrix = png(confusion_matrix_png(analysis.confusion))
    curves = png(pr_curves_png(analysis.classes))
    assert matrix.width > 300 and matrix.height > 300
    assert curves.size == (700, 500)
    assert len(set(curves.convert("RGB").getdata())) > 10  # something is drawn


def test_gallery_draws_ground_truth_and_kept_predictions_in_their_colours() -> None:
    image = Image.new("RGB", (200, 100), (0, 0, 0))
    names = {1: "tyre", 2: HOSTILE_NAME}
    drawn = png(
        gallery_png(
            image,
            [Box(1, (10, 40, 30, 30))],
            [Box(2, (100, 40, 40, 30), 0.9), Box(1, (160, 40, 20, 20), 0.2)],
            names,
            0.5,
        )
    ).convert("RGB")

    assert drawn.size == (200, 100)
    assert drawn.getpixel((10, 55)) == GROUND_TRUTH_COLOUR  # left edge of the ground truth box
    assert drawn.getpixel((100, 55)) == PREDICTION_COLOUR  # left edge of the kept prediction
    assert drawn.getpixel((160, 55)) == (0, 0, 0)  # the prediction below the threshold is not drawn
    label_band = drawn.crop((0, 25, 200, 40)).getdata()  # its label sits on a filled box above it
    assert sum(1 for pixel in label_band if pixel == PREDICTION_COLOUR) > 500


def test_gallery_scales_large_images_down() -> None:
    drawn = png(
        gallery_png(Image.new("RGB", (2000, 1000)), [Box(1, (1000, 500, 200, 200))], [], {1: "a"}, 0.5)
    )
    assert drawn.size == (800, 400)
    assert drawn.convert("RGB").getpixel((400, 240)) == GROUND_TRUTH_COLOUR  # box scaled with the image


def test_gallery_shows_the_worst_then_the_best_images() -> None:
    gt, preds = synthetic_split(0)
    analysis = analyze_predictions(gt, preds, gallery_size=3)
    items = gallery(analysis, gt, preds, blank)

    assert [g.image_id for g in items] == [*analysis.worst_images, *analysis.best_images]
    assert [g.rank for g in items] == ["worst"] * 3 + ["best"] * 3
    assert items[0].errors >= items[2].errors > 0 and items[-1].true_positives > 0
    assert all(png(g.png).size == (400, 300) for g in items)


def test_split_images_are_opened_only_below_their_root(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    Image.new("RGB", (7, 5), (1, 2, 3)).save(tmp_path / "img" / "a.png")
    load = open_split_image(tmp_path)
    assert load({"file_name": "img/a.png"}).size == (7, 5)
    with pytest.raises(ValueError, match=r"\.\."):
        load({"file_name": "../etc/passwd"})


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.metas: list[dict[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))
        if tag == "meta":
            self.metas.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_report_is_self_contained_and_shows_hostile_names_as_text() -> None:
    gt, preds = synthetic_split(0)
    analysis = analyze_predictions(gt, preds, gallery_size=2)
    section = build_section(
        f"model {HOSTILE_NAME}", analysis, gt, preds, blank, {"model": HOSTILE_CONTEXT, "split": "test"}
    )
    page_html = render_report(f"Report {HOSTILE_NAME}", [section], notes=["both <b>models</b> on one split"])

    assert "<script" not in page_html.lower() and "<img src=x" not in page_html
    page = Page()
    page.feed(page_html)
    text = "".join(page.text)
    assert HOSTILE_NAME in text and HOSTILE_CONTEXT in text and "both <b>models</b>" in text
    assert text.count(HOSTILE_NAME) >= 5  # title, heading, class table, confusion rows and columns
    assert "script" not in page.tags and "b" not in page.tags
    assert len(page.images) == 2 + 4  # confusion matrix, PR curves, 2 worst + 2 best
    for img in page.images:
        src = img["src"] or ""
        assert src.startswith("data:image/png;base64,")
        png(base64.b64decode(src.split(",", 1)[1]))
    csp = [m for m in page.metas if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")
    assert f"{analysis.classes[0].recommended_score_threshold:.3f}" in text


def test_the_report_renders_without_gallery_images() -> None:
    gt, preds = synthetic_split(1)
    analysis = analyze_predictions(gt, preds)
    page = Page()
    page.feed(render_report("r", [build_section("m", analysis, gt, preds, None)]))
    assert len(page.images) == 2
    assert "— (no true positive)" in "".join(page.text)  # the never annotated class


def test_a_metrics_only_section_shows_numbers_as_text_and_unmeasured_as_a_dash() -> None:
    section = MetricsSection(
        "datasets/d/versions/2 / test split",
        {"bbox_mAP": 0.1234, "bbox_mAP_s": -1.0},
        [(HOSTILE_NAME, 0.5, 0.35), ("absent", -1.0, -1.0), ("val only", 0.2, None)],
        {"split sha256": HOSTILE_CONTEXT},
        "plots not downloadable",
    )
    page = render_report("r", [section])
    assert "<td>0.123</td>" in page and "<td>—</td>" in page and "<p>plots not downloadable</p>" in page
    assert HOSTILE_NAME not in page and HOSTILE_CONTEXT not in page and "<script" not in page
    assert "<tr><td>absent</td><td>—</td><td>— (no true positive)</td></tr>" in page
    assert "<tr><td>val only</td><td>0.200</td><td>—</td></tr>" in page
