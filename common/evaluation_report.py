"""One self-contained HTML page per report: for each evaluation its metric tables (overall, per class, per
size), confusion matrix, PR curves, recommended thresholds and prediction gallery, PNGs embedded as
``data:`` URIs.

Every piece of text (category names, file names, model names) is data: it goes through ``html.escape``
and nothing else builds markup. The page also forbids scripts and remote loads by its Content Security
Policy, so it opens offline and a name that slipped through could not run.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.evaluation_analysis import (
    BACKGROUND,
    COCO_KEYS,
    NO_THRESHOLD,
    EvaluationAnalysis,
    SizeMetrics,
    analysis_from_dict,
    threshold_for,
)

GROUND_TRUTH_COLOUR = (0, 200, 83)  # green
PREDICTION_COLOUR = (255, 61, 0)  # red-orange
GALLERY_RANKS = ("worst", "best")
_GALLERY_FILE = re.compile(r"^test_gallery_(worst|best)_(\d{2})_image_(\d{1,18})\.png$")

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#f2f2f2}img{max-width:100%}
figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}figcaption{font-size:12px;color:#555}
.key span{display:inline-block;width:1em;height:1em;margin:0 .3em 0 1em;vertical-align:middle}
section{border-top:2px solid #444;margin-top:2em}
"""


@dataclass(frozen=True)
class GalleryImage:
    image_id: int
    file_name: str  # the image's file in the split; empty when not known (a stored gallery)
    rank: str  # "worst" or "best"
    errors: int
    true_positives: int
    png: bytes


@dataclass(frozen=True)
class ReportSection:
    """One evaluation on the page; ``context``: what was evaluated on what (model, dataset version, split)."""

    heading: str
    analysis: EvaluationAnalysis
    confusion_png: bytes
    pr_curves_png: bytes
    gallery: Sequence[GalleryImage] = ()
    context: Mapping[str, str] = field(default_factory=dict)


def stored_section(
    heading: str,
    analysis: Mapping[str, Any],
    confusion_png: bytes,
    pr_curves_png: bytes,
    context: Mapping[str, str] | None = None,
    gallery_files: Mapping[str, bytes] | None = None,
) -> ReportSection:
    """One evaluation from what a run stored: its EVALUATION_ANALYSIS document (``to_dict``), the
    CONFUSION_MATRIX and PR_CURVES PNGs and the PREDICTION_GALLERY PNGs (filename → bytes) drawn then.

    Raises:
        EvaluationInputError: ``analysis`` is not an analysis document.
    """
    parsed = analysis_from_dict(analysis)
    drawn = stored_gallery(parsed, gallery_files or {})
    return ReportSection(heading, parsed, confusion_png, pr_curves_png, drawn, dict(context or {}))


@dataclass(frozen=True)
class MetricsSection:
    """One evaluation known only by its recorded metrics (no analysis document or plots reachable): the
    overall COCO numbers (``COCO_KEYS``) and per class (name, AP, recommended score threshold or None)."""

    heading: str
    metrics: Mapping[str, float]
    classes: Sequence[tuple[str, float, float | None]]
    context: Mapping[str, str] = field(default_factory=dict)
    note: str = ""


def gallery_filename(rank: str, position: int, image_id: int) -> str:
    """The stored name of a gallery PNG: its rank, place within the rank (1-based) and image id."""
    return f"test_gallery_{rank}_{position:02d}_image_{image_id}.png"


def stored_gallery(analysis: EvaluationAnalysis, files: Mapping[str, bytes]) -> tuple[GalleryImage, ...]:
    """Stored gallery PNGs in gallery order (worst first, then best; by place); a file not named by
    ``gallery_filename`` or of an image the analysis does not rank is left out."""
    errors = {e.image_id: e for e in analysis.image_errors}
    found = []
    for name, png in files.items():
        match = _GALLERY_FILE.match(name)
        if match is None or int(match[3]) not in errors:
            continue
        e = errors[int(match[3])]
        item = GalleryImage(e.image_id, "", match[1], e.errors, e.true_positives, png)
        found.append((GALLERY_RANKS.index(match[1]), int(match[2]), item))
    return tuple(item for _, _, item in sorted(found, key=lambda f: (f[0], f[1])))


def render_report(
    title: str, sections: Sequence[ReportSection | MetricsSection], notes: Sequence[str] = ()
) -> str:
    """The whole page as a string (write it UTF-8)."""
    body = [f"<h1>{_e(title)}</h1>", *(f"<p>{_e(n)}</p>" for n in notes)]
    body += [_metrics_section(s) if isinstance(s, MetricsSection) else _section(s) for s in sections]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _section(s: ReportSection) -> str:
    a = s.analysis
    parts = [f"<section><h2>{_e(s.heading)}</h2>"]
    if s.context:
        parts.append(_table(("", ""), [(k, v) for k, v in s.context.items()], head=False))
    parts.append(f"<p>{a.images} images, {a.predictions} predictions.</p>")
    parts.append("<h3>COCO bbox metrics</h3>")
    parts.append(_table(COCO_KEYS, [tuple(_num(a.metrics.get(k)) for k in COCO_KEYS)]))
    parts.append("<h3>Per class</h3>")
    parts.append(
        _table(
            (
                "class",
                "boxes",
                "predictions",
                "AP",
                "AP50",
                "AP75",
                "recommended score threshold",
                "F1",
                "precision",
                "recall",
            ),
            [
                (
                    c.name,
                    c.ground_truth,
                    c.detections,
                    _num(c.ap),
                    _num(c.ap50),
                    _num(c.ap75),
                    _threshold(c.recommended_score_threshold),
                    _num(c.f1),
                    _num(c.precision),
                    _num(c.recall),
                )
                for c in a.classes
            ],
        )
    )
    parts.append("<h3>Per object size</h3>")
    parts.append(_sizes("COCO size (annotation area)", a.coco_sizes))
    parts.append(_sizes("box side sqrt(w·h) in px (the dataset profile's bins)", a.pixel_sizes))
    parts.append(_confusion(s))
    parts.append("<h3>Precision-recall curves</h3>")
    parts.append(_img(s.pr_curves_png, "precision-recall curves per class at IoU 0.5"))
    if s.gallery:
        parts.append(_gallery(s.gallery))
    parts.append("</section>")
    return "\n".join(parts)


def _metrics_section(s: MetricsSection) -> str:
    parts = [f"<section><h2>{_e(s.heading)}</h2>"]
    if s.context:
        parts.append(_table(("", ""), [(k, v) for k, v in s.context.items()], head=False))
    if s.note:
        parts.append(f"<p>{_e(s.note)}</p>")
    parts.append("<h3>COCO bbox metrics</h3>")
    parts.append(_table(COCO_KEYS, [tuple(_num(s.metrics.get(k)) for k in COCO_KEYS)]))
    parts.append("<h3>Per class</h3>")
    rows = [(n, _num(ap), "—" if t is None else _threshold(t)) for n, ap, t in s.classes]
    parts.append(_table(("class", "AP", "recommended score threshold"), rows))
    parts.append("</section>")
    return "\n".join(parts)


def _confusion(s: ReportSection) -> str:
    m = s.analysis.confusion
    labels = [*m.names, BACKGROUND]
    thresholds = ", ".join(
        f"{name} {threshold_for(m.score_threshold, cid):.3f}"
        for cid, name in zip(m.category_ids, m.names, strict=True)
    )
    rows = [(f"ground truth: {labels[g]}", *row) for g, row in enumerate(m.counts)]
    return "\n".join(
        [
            f"<h3>Confusion matrix (IoU &ge; {m.iou_threshold:g})</h3>",
            f"<p>Score thresholds: {_e(thresholds)}. Rows: ground truth; columns: predictions; "
            f"{_e(BACKGROUND)}: no box (false positive) or no prediction (missed).</p>",
            _table(("", *(f"predicted: {label}" for label in labels)), rows),
            _img(s.confusion_png, "confusion matrix"),
        ]
    )


def _gallery(items: Sequence[GalleryImage]) -> str:
    gt, pred = (f"rgb{c}" for c in (GROUND_TRUTH_COLOUR, PREDICTION_COLOUR))
    parts = [
        "<h3>Prediction gallery</h3>",
        f'<p class="key"><span style="background:{gt}"></span>ground truth'
        f'<span style="background:{pred}"></span>prediction (class, score)</p>',
    ]
    for rank in GALLERY_RANKS:
        shown = [g for g in items if g.rank == rank]
        if not shown:
            continue
        parts.append(f"<h4>{_e(rank.capitalize())} images</h4>")
        for g in shown:
            shown_name = f"{g.file_name} (image {g.image_id})" if g.file_name else f"image {g.image_id}"
            caption = f"{shown_name}: {g.errors} errors, {g.true_positives} correct"
            parts.append(f"<figure>{_img(g.png, caption)}<figcaption>{_e(caption)}</figcaption></figure>")
    return "\n".join(parts)


def _sizes(kind: str, sizes: Sequence[SizeMetrics]) -> str:
    return _table(
        (kind, "area range (px²)", "boxes", "AP", "AP50"),
        [(s.label, _area(s), s.ground_truth, _num(s.ap), _num(s.ap50)) for s in sizes],
    )


def _table(header: Sequence[object], rows: Sequence[Sequence[object]], *, head: bool = True) -> str:
    thead = "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead>" if head else ""
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _num(value: object) -> str:
    """COCO's -1 ("no data") shows as a dash."""
    if not isinstance(value, int | float) or value < 0:
        return "—"
    return f"{value:.3f}"


def _threshold(value: float) -> str:
    return "— (no true positive)" if value == NO_THRESHOLD else f"{value:.3f}"


def _area(s: SizeMetrics) -> str:
    upper = "∞" if s.max_area >= 1e10 else f"{s.max_area:.0f}"
    return f"{s.min_area:.0f} to {upper}"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
