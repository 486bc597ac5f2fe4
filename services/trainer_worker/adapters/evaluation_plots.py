"""Pictures of an evaluation, as PNG bytes: the confusion matrix, per-class PR curves, and the prediction
gallery (an image with its ground truth and predictions drawn).

Category names are untrusted text: matplotlib would read ``$...$`` in them as mathtext and hides legend
entries whose label starts with ``_``, so names are passed through ``_plain`` and legends get explicit
labels. matplotlib's Agg backend (no display); Pillow for the gallery.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from common.dataset_layout import confined_relative_path
from common.evaluation_analysis import (
    BACKGROUND,
    ClassMetrics,
    ConfusionMatrix,
    EvaluationAnalysis,
    Threshold,
    threshold_for,
)
from common.evaluation_report import (
    GROUND_TRUTH_COLOUR,
    PREDICTION_COLOUR,
    GalleryImage,
    ReportSection,
    gallery_filename,
)
from services.trainer_worker.domain.evaluation_analysis import Box

GALLERY_MAX_SIDE = 800  # px; larger images are scaled down before drawing
MAX_LABEL_CHARS = 40


def confusion_matrix_png(matrix: ConfusionMatrix) -> bytes:
    """Counts in the cells; colour: share of the ground truth row (background row: of its detections)."""
    plt = _pyplot()
    counts = np.array(matrix.counts, dtype=float)
    labels = [_plain(n) for n in (*matrix.names, BACKGROUND)]
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    side = max(4.0, 0.7 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="share of the row")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="ground truth")
    ax.set_title(f"Confusion matrix (IoU >= {matrix.iou_threshold:g})")
    for g in range(len(labels)):
        for p in range(len(labels)):
            ax.text(
                p,
                g,
                str(int(counts[g, p])),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if share[g, p] > 0.6 else "black",
            )
    return _png(fig, plt)


def pr_curves_png(classes: Sequence[ClassMetrics]) -> bytes:
    """Precision over recall at IoU 0.5 per class with ground truth; a dot at the recommended threshold."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    handles, labels = [], []
    for c in classes:
        if c.ap50 < 0:
            continue  # no ground truth in the split: no curve
        precision = np.array(c.pr_curve.precision)
        reached = int(np.flatnonzero(precision > 0)[-1]) + 1 if (precision > 0).any() else 1
        (line,) = ax.plot(c.pr_curve.recall[:reached], np.clip(precision[:reached], 0, None), lw=1.5)
        handles.append(line)
        labels.append(f"{_plain(c.name)} (AP50 {c.ap50:.3f})")
        if c.f1 > 0:
            ax.plot([c.recall], [c.precision], "o", color=line.get_color())
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title("Precision-recall at IoU 0.5 (dot: F1-optimal threshold)")
    ax.grid(alpha=0.3)
    if handles:
        ax.legend(handles, labels, loc="lower left", fontsize=8)  # explicit labels: "_name" stays shown
    return _png(fig, plt)


def gallery_png(
    image: Image.Image,
    ground_truth: Sequence[Box],
    predictions: Sequence[Box],
    names: Mapping[int, str],
    score_threshold: Threshold,
    *,
    max_side: int = GALLERY_MAX_SIDE,
) -> bytes:
    """``image`` with its ground truth (green, class name) and its predictions at or above the threshold
    (red-orange, class name and score); scaled so its longer side is at most ``max_side``."""
    canvas = image.convert("RGB")
    scale = min(1.0, max_side / max(canvas.size))
    if scale < 1.0:
        canvas = canvas.resize((max(1, round(canvas.width * scale)), max(1, round(canvas.height * scale))))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=12)
    for box in ground_truth:
        _draw_box(
            draw,
            font,
            box,
            scale,
            GROUND_TRUTH_COLOUR,
            _label(names, box.category_id),
            below=True,
            image_width=canvas.width,
        )
    kept = [p for p in predictions if p.score >= threshold_for(score_threshold, p.category_id)]
    for box in sorted(kept, key=lambda p: p.score):  # the highest score drawn last, on top
        text = f"{_label(names, box.category_id)} {box.score:.2f}"
        _draw_box(draw, font, box, scale, PREDICTION_COLOUR, text, below=False, image_width=canvas.width)
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


def gallery(
    analysis: EvaluationAnalysis,
    ground_truth: Mapping[str, Any],
    predictions: Sequence[Mapping[str, Any]],
    load_image: Callable[[Mapping[str, Any]], Image.Image],
    *,
    max_side: int = GALLERY_MAX_SIDE,
) -> tuple[GalleryImage, ...]:
    """The analysis's worst then best images, drawn; ``load_image`` opens an image record of the split
    (``open_split_image`` for a directory)."""
    records = {int(i["id"]): i for i in ground_truth["images"]}
    names = {int(c["id"]): str(c["name"]) for c in ground_truth["categories"]}
    errors = {e.image_id: e for e in analysis.image_errors}
    out = []
    for rank, ids in (("worst", analysis.worst_images), ("best", analysis.best_images)):
        for image_id in ids:
            gts = [_box(a) for a in ground_truth["annotations"] if int(a["image_id"]) == image_id]
            dets = [_box(p) for p in predictions if int(p["image_id"]) == image_id]
            png = gallery_png(
                load_image(records[image_id]),
                gts,
                dets,
                names,
                analysis.confusion.score_threshold,
                max_side=max_side,
            )
            e = errors[image_id]
            out.append(
                GalleryImage(
                    image_id,
                    str(records[image_id].get("file_name", "")),
                    rank,
                    e.errors,
                    e.true_positives,
                    png,
                )
            )
    return tuple(out)


def gallery_files(items: Sequence[GalleryImage]) -> dict[str, bytes]:
    """The gallery as stored (PREDICTION_GALLERY artifacts): ``gallery_filename`` → PNG bytes."""
    places: dict[str, int] = {}
    out = {}
    for g in items:
        places[g.rank] = places.get(g.rank, 0) + 1
        out[gallery_filename(g.rank, places[g.rank], g.image_id)] = g.png
    return out


def build_section(
    heading: str,
    analysis: EvaluationAnalysis,
    ground_truth: Mapping[str, Any],
    predictions: Sequence[Mapping[str, Any]],
    load_image: Callable[[Mapping[str, Any]], Image.Image] | None,
    context: Mapping[str, str] | None = None,
) -> ReportSection:
    """Draws the pictures of one evaluation; without ``load_image`` (images not at hand) no gallery."""
    drawn = gallery(analysis, ground_truth, predictions, load_image) if load_image is not None else ()
    return ReportSection(
        heading,
        analysis,
        confusion_matrix_png(analysis.confusion),
        pr_curves_png(analysis.classes),
        drawn,
        dict(context or {}),
    )


def open_split_image(root: Path) -> Callable[[Mapping[str, Any]], Image.Image]:
    """A loader of a split's images below ``root``, oriented as displayed (EXIF), as training sees them."""

    def load(record: Mapping[str, Any]) -> Image.Image:
        path = root / confined_relative_path(record.get("file_name"))
        with Image.open(path) as image:
            return ImageOps.exif_transpose(image).convert("RGB")

    return load


def _draw_box(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    box: Box,
    scale: float,
    colour: tuple[int, int, int],
    text: str,
    *,
    below: bool,
    image_width: int,
) -> None:
    x, y, w, h = (v * scale for v in box.bbox)
    draw.rectangle((x, y, x + w, y + h), outline=colour, width=2)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    tw, th = right - left + 4, bottom - top + 4
    ty = y + h if below else max(0.0, y - th)
    tx = max(0.0, min(x, image_width - tw))  # keep the label inside the image
    draw.rectangle((tx, ty, tx + tw, ty + th), fill=colour)
    draw.text((tx + 2, ty + 2 - top), text, fill=(255, 255, 255), font=font)


def _label(names: Mapping[int, str], category_id: int) -> str:
    name = names.get(category_id, str(category_id))
    return name if len(name) <= MAX_LABEL_CHARS else name[: MAX_LABEL_CHARS - 3] + "..."


def _box(record: Mapping[str, Any]) -> Box:
    x, y, w, h = (float(v) for v in record["bbox"])
    return Box(
        int(record["category_id"]), (x, y, w, h), float(record.get("score", 1.0)), bool(record.get("iscrowd"))
    )


def _plain(text: str) -> str:
    """Shown as written by matplotlib: ``$`` would start mathtext."""
    return text.replace("$", r"\$")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any, plt: Any) -> bytes:
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return out.getvalue()
