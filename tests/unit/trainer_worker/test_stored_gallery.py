"""The prediction gallery as a run stores it (PREDICTION_GALLERY PNGs named by rank, place and image id) and
as the report reads it back: the worst then best images, deterministic bytes, valid PNGs."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from common.evaluation_report import gallery_filename, render_report, stored_gallery, stored_section
from services.trainer_worker.adapters.coco_evaluation import analyze_predictions
from services.trainer_worker.adapters.evaluation_plots import (
    confusion_matrix_png,
    gallery,
    gallery_files,
    pr_curves_png,
)
from services.trainer_worker.adapters.split_analysis import (
    GALLERY_GLOB,
    GALLERY_MAX_SIDE,
    GALLERY_SIZE,
    analyze_test_split,
    predictions_prefix,
)
from tests.fixtures.coco_predictions import synthetic_split


def write_images(root: Path, ground_truth: dict) -> None:
    """Each image a different flat grey, so a mixed-up file shows in the PNG."""
    for record in ground_truth["images"]:
        path = root / record["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        shade = 40 + 5 * int(record["id"])
        Image.new("RGB", (record["width"], record["height"]), (shade, shade, shade)).save(path)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image


def analyzed(tmp_path: Path, name: str) -> tuple[list[Path], dict]:
    ground_truth, predictions = synthetic_split(seed=2)
    images = tmp_path / "images"
    write_images(images, ground_truth)
    ann_file = tmp_path / "test.json"
    ann_file.write_text(json.dumps(ground_truth))
    eval_dir = tmp_path / f"eval-{name}"
    eval_dir.mkdir()
    Path(f"{predictions_prefix(eval_dir)}.bbox.json").write_text(json.dumps(predictions))
    out = tmp_path / name
    out.mkdir()
    result = analyze_test_split(ann_file, eval_dir, out, images)
    return [p for p in result.files if p.match(GALLERY_GLOB)], ground_truth


def test_the_split_analysis_stores_the_worst_and_best_images_drawn_and_deterministic(tmp_path: Path) -> None:
    first, ground_truth = analyzed(tmp_path, "a")
    second, _ = analyzed(tmp_path, "b")
    analysis = json.loads((tmp_path / "a" / "test_analysis.json").read_text())

    worst, best = analysis["worst_images"], analysis["best_images"]
    assert len(worst) == GALLERY_SIZE and 0 < len(best) <= GALLERY_SIZE
    expected = [gallery_filename("worst", k, i) for k, i in enumerate(worst, 1)]
    expected += [gallery_filename("best", k, i) for k, i in enumerate(best, 1)]
    assert [p.name for p in first] == expected
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]  # same bytes every run
    sizes = {r["id"]: (r["width"], r["height"]) for r in ground_truth["images"]}
    for path, image_id in zip(first, [*worst, *best], strict=True):
        image = decoded(path.read_bytes()).convert("RGB")
        assert image.size == sizes[image_id] and max(image.size) <= GALLERY_MAX_SIDE
        shade = 40 + 5 * image_id
        colours = image.getcolors(1 << 16) or []
        assert max(colours)[1] == (shade, shade, shade)  # mostly its own image underneath
        assert len(colours) > 1  # boxes drawn on it


def test_without_readable_images_no_gallery_is_written_and_the_numbers_stay(tmp_path: Path) -> None:
    ground_truth, predictions = synthetic_split(seed=2)
    ann_file = tmp_path / "test.json"
    ann_file.write_text(json.dumps(ground_truth))
    (tmp_path / "eval").mkdir()
    Path(f"{predictions_prefix(tmp_path / 'eval')}.bbox.json").write_text(json.dumps(predictions))
    (tmp_path / "no-images").mkdir()
    for image_root in (None, tmp_path / "no-images"):
        result = analyze_test_split(ann_file, tmp_path / "eval", tmp_path, image_root)
        assert len(result.files) == 4 and not list(tmp_path.glob(GALLERY_GLOB))
        assert result.metrics["bbox_mAP"] > 0


def test_a_stored_gallery_reads_back_in_gallery_order_into_the_report() -> None:
    ground_truth, predictions = synthetic_split(seed=3)
    analysis = analyze_predictions(ground_truth, predictions, gallery_size=2)
    items = gallery(analysis, ground_truth, predictions, lambda r: Image.new("RGB", (40, 30)))
    files = gallery_files(items)
    shuffled = dict([*reversed(list(files.items())), ("test_gallery_worst_01_image_x.png", b"junk")])

    back = stored_gallery(analysis, shuffled)
    assert [(g.rank, g.image_id, g.errors, g.true_positives, g.png) for g in back] == [
        (g.rank, g.image_id, g.errors, g.true_positives, g.png) for g in items
    ]
    section = stored_section(
        "Test split",
        analysis.to_dict(),
        confusion_matrix_png(analysis.confusion),
        pr_curves_png(analysis.classes),
        gallery_files=files,
    )
    page = render_report("r", [section])
    assert "Worst images" in page and "Best images" in page
    assert page.count("<figure>") == len(items) == 4
    assert f"image {items[0].image_id}: {items[0].errors} errors" in page
