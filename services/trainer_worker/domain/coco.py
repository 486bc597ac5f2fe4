"""The COCO model and its validation: parse one annotation document into typed records, reporting every
malformed category, image, annotation, box and polygon with its own precise reason.

Pure logic: callers pass parsed JSON documents; nothing here touches files (``adapters/dataset_source.py``
does).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from common.dataset_layout import confined_relative_path
from services.trainer_worker.domain.problems import Problem, ProblemLog

# Annotation tools round coordinates; a box may overshoot the image border by a hair and is then clipped.
BBOX_TOLERANCE_PX = 0.01
REQUIRED_KEYS = ("images", "annotations", "categories")
# An image's group (flight, sequence, video): images of one group never straddle splits. First present wins.
GROUP_KEYS = ("group", "sequence", "video_id")


@dataclass(frozen=True)
class Category:
    id: int
    name: str


@dataclass(frozen=True)
class ImageRecord:
    id: int
    file_name: str  # normalized, relative to the dataset directory
    width: int
    height: int
    group: str = ""  # from GROUP_KEYS; "" when the entry names none


@dataclass(frozen=True)
class Annotation:
    id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]  # x, y, w, h inside the image
    area: float
    iscrowd: int
    segmentation: object = None  # passed through unchanged (polygons or RLE)


@dataclass(frozen=True)
class CocoDataset:
    categories: tuple[Category, ...]
    images: tuple[ImageRecord, ...]
    annotations: tuple[Annotation, ...]

    def subset(self, image_ids: Iterable[int]) -> CocoDataset:
        keep = set(image_ids)
        return CocoDataset(
            self.categories,
            tuple(i for i in self.images if i.id in keep),
            tuple(a for a in self.annotations if a.image_id in keep),
        )

    def to_coco(self) -> dict[str, object]:
        """COCO dict as written for mmdet's CocoDataset (file_name relative to the image root).

        ``info`` and ``licenses`` are part of the format: pycocotools' ``loadRes`` (mmdet's CocoMetric) reads
        ``info`` from the ground truth and fails without it.
        """
        annotations: list[dict[str, object]] = []
        for a in self.annotations:
            ann: dict[str, object] = {
                "id": a.id,
                "image_id": a.image_id,
                "category_id": a.category_id,
                "bbox": list(a.bbox),
                "area": a.area,
                "iscrowd": a.iscrowd,
            }
            if a.segmentation:
                ann["segmentation"] = a.segmentation
            annotations.append(ann)
        return {
            "info": {"description": "prepared by the Raven trainer worker"},
            "licenses": [],
            "images": [
                {"id": i.id, "file_name": i.file_name, "width": i.width, "height": i.height}
                for i in self.images
            ],
            "annotations": annotations,
            "categories": [{"id": c.id, "name": c.name} for c in self.categories],
        }


def polygon_envelope(segmentation: object) -> tuple[tuple[float, float, float, float], float]:
    """Envelope ``(x, y, w, h)`` and total area of COCO polygons; ValueError says why they are degenerate."""
    if not isinstance(segmentation, list) or not all(isinstance(p, list) for p in segmentation):
        raise ValueError("segmentation must be a list of polygons [[x1, y1, x2, y2, ...], ...]")
    xs: list[float] = []
    ys: list[float] = []
    area = 0.0
    for n, poly in enumerate(segmentation):
        if not all(_is_number(v) for v in poly):
            raise ValueError(f"polygon {n} holds values that are not finite numbers")
        if len(poly) % 2:
            raise ValueError(f"polygon {n} has an odd number of coordinates ({len(poly)})")
        if len(poly) < 6:
            raise ValueError(f"polygon {n} has {len(poly) // 2} point(s); a polygon needs at least 3")
        px, py = poly[0::2], poly[1::2]
        shoelace = sum(px[k] * py[k - 1] - px[k - 1] * py[k] for k in range(len(px)))
        if abs(shoelace) / 2 <= 0:
            raise ValueError(f"polygon {n} has zero area")
        area += abs(shoelace) / 2
        xs.extend(px)
        ys.extend(py)
    if not xs:
        raise ValueError("segmentation holds no polygon")
    x0, y0 = min(xs), min(ys)
    return (float(x0), float(y0), float(max(xs) - x0), float(max(ys) - y0)), area


def parse_coco(doc: object, source: str, problems: ProblemLog) -> CocoDataset | None:
    """Check one COCO document, adding every problem to ``problems``; None when its structure is unusable."""
    if not isinstance(doc, dict):
        problems.add(
            Problem.NOT_OBJECT,
            f"{source}: top level is a JSON {_json_type(doc)}, expected an object "
            "with images, annotations and categories",
        )
        return None
    bad_keys = [k for k in REQUIRED_KEYS if not isinstance(doc.get(k), list)]
    if bad_keys:
        problems.add(Problem.MISSING_KEY, f"{source}: key(s) {', '.join(bad_keys)} missing or not a list")
        return None
    if not doc["annotations"]:
        problems.add(Problem.NO_ANNOTATIONS, f"{source}: contains no annotations")
    categories, bad_cat_ids = _parse_categories(doc["categories"], source, problems)
    images, bad_image_ids = _parse_images(doc["images"], source, problems)
    annotations = _parse_annotations(
        doc["annotations"], images, categories, (bad_image_ids, bad_cat_ids), source, problems
    )
    return CocoDataset(
        tuple(sorted(categories.values(), key=lambda c: c.id)),
        tuple(sorted(images.values(), key=lambda i: i.id)),
        tuple(annotations),
    )


def _parse_categories(
    items: list[object], source: str, problems: ProblemLog
) -> tuple[dict[int, Category], set[int]]:
    categories: dict[int, Category] = {}
    names: dict[str, int] = {}
    bad_ids: set[int] = set()
    for n, raw in enumerate(items):
        if not (
            isinstance(raw, dict)
            and _is_int(raw.get("id"))
            and isinstance(raw.get("name"), str)
            and raw["name"].strip()
        ):
            problems.add(
                Problem.MALFORMED_CATEGORY,
                f"{source}: categories[{n}] needs an integer id and a non-empty name, got {_short(raw)}",
            )
            continue
        cat = Category(raw["id"], raw["name"])
        if cat.id in categories:
            problems.add(
                Problem.DUPLICATE_CATEGORY_ID,
                f"{source}: category id {cat.id} is used by {categories[cat.id].name!r} and {cat.name!r}",
            )
            bad_ids.add(cat.id)
        elif cat.name in names:
            problems.add(
                Problem.DUPLICATE_CATEGORY_NAME,
                f"{source}: category name {cat.name!r} is used by ids {names[cat.name]} and {cat.id}",
            )
            bad_ids.add(cat.id)
        else:
            categories[cat.id] = cat
            names[cat.name] = cat.id
    return categories, bad_ids


def _parse_images(
    items: list[object], source: str, problems: ProblemLog
) -> tuple[dict[int, ImageRecord], set[int]]:
    images: dict[int, ImageRecord] = {}
    bad_ids: set[int] = set()
    for n, raw in enumerate(items):
        if not (isinstance(raw, dict) and _is_int(raw.get("id"))):
            problems.add(
                Problem.MALFORMED_IMAGE, f"{source}: images[{n}] needs an integer id, got {_short(raw)}"
            )
            continue
        image_id = raw["id"]
        if image_id in images or image_id in bad_ids:
            problems.add(Problem.DUPLICATE_IMAGE_ID, f"{source}: image id {image_id} appears more than once")
            continue
        bad_ids.add(image_id)  # removed again below when the entry is fine
        try:
            file_name = confined_relative_path(raw.get("file_name"))
        except ValueError as exc:
            problems.add(
                Problem.FILE_NAME_ESCAPES,
                f"{source}: image id {image_id}: file_name {_short(raw.get('file_name'))} {exc}",
            )
            continue
        width, height = raw.get("width"), raw.get("height")
        if not (_is_whole_positive(width) and _is_whole_positive(height)):
            problems.add(
                Problem.IMAGE_SIZE_INVALID,
                f"{source}: image id {image_id} ({file_name}): width and height "
                f"must be positive integers, got {_short(width)}x{_short(height)}",
            )
            continue
        group = _group(raw)
        if group is None:
            problems.add(
                Problem.MALFORMED_IMAGE,
                f"{source}: image id {image_id} ({file_name}): {'/'.join(GROUP_KEYS)} must be a string "
                "or an integer",
            )
            continue
        w, h = int(width), int(height)  # type: ignore[arg-type]
        images[image_id] = ImageRecord(image_id, file_name, w, h, group)
        bad_ids.discard(image_id)
    return images, bad_ids


def _parse_annotations(
    items: list[object],
    images: Mapping[int, ImageRecord],
    categories: Mapping[int, Category],
    broken_ids: tuple[set[int], set[int]],
    source: str,
    problems: ProblemLog,
) -> list[Annotation]:
    """``broken_ids`` (image ids, category ids) were already reported; annotations using them are skipped."""
    seen: set[int] = set()
    annotations: list[Annotation] = []
    for n, raw in enumerate(items):
        if not (
            isinstance(raw, dict)
            and type(raw.get("id")) is int
            and type(raw.get("image_id")) is int
            and type(raw.get("category_id")) is int
        ):
            problems.add(
                Problem.MALFORMED_ANNOTATION,
                f"{source}: annotations[{n}] needs integer id, image_id and category_id, got {_short(raw)}",
            )
            continue
        ann_id, image_id, cat_id = raw["id"], raw["image_id"], raw["category_id"]
        label = f"{source}: annotation id {ann_id}"
        if ann_id in seen:
            problems.add(Problem.DUPLICATE_ANNOTATION_ID, f"{label} appears more than once")
            continue
        seen.add(ann_id)
        image = images.get(image_id)
        if image is None:
            if image_id not in broken_ids[0]:
                problems.add(Problem.UNKNOWN_IMAGE, f"{label}: image_id {image_id} is not in images")
            continue
        if cat_id not in categories:
            if cat_id not in broken_ids[1]:
                problems.add(Problem.UNKNOWN_CATEGORY, f"{label}: category_id {cat_id} is not in categories")
            continue
        geometry = _geometry(raw, image, label, problems)
        if geometry is not None:
            bbox, area = geometry
            iscrowd = 1 if raw.get("iscrowd") in (1, True) else 0
            annotations.append(
                Annotation(ann_id, image_id, cat_id, bbox, area, iscrowd, raw.get("segmentation"))
            )
    return annotations


def _geometry(
    raw: dict[str, object], image: ImageRecord, label: str, problems: ProblemLog
) -> tuple[tuple[float, float, float, float], float] | None:
    """Box (given, or the polygon envelope) clipped to the image, and area; None after reporting a problem."""
    segmentation, raw_bbox = raw.get("segmentation"), raw.get("bbox")
    envelope = None
    if isinstance(segmentation, list) and segmentation:
        try:
            envelope = polygon_envelope(segmentation)
        except ValueError as exc:
            problems.add(Problem.DEGENERATE_POLYGON, f"{label}: {exc}")
            return None
    if raw_bbox is not None and raw_bbox != []:
        if not (isinstance(raw_bbox, list) and len(raw_bbox) == 4 and all(_is_number(v) for v in raw_bbox)):
            problems.add(
                Problem.BBOX_MALFORMED,
                f"{label}: bbox {_short(raw_bbox)} must be 4 finite numbers [x, y, width, height]",
            )
            return None
        x, y, w, h = (float(v) for v in raw_bbox)
        what = "bbox"
        if w <= 0 or h <= 0:
            problems.add(
                Problem.BBOX_NON_POSITIVE,
                f"{label}: bbox {_fmt_box(raw_bbox)} has non-positive width or height",
            )
            return None
        area = w * h if envelope is None else envelope[1]
    elif envelope is not None:
        (x, y, w, h), area = envelope
        what = "polygon envelope"
    else:
        rle = " (an RLE mask needs an explicit bbox)" if isinstance(segmentation, dict) else ""
        problems.add(Problem.NO_GEOMETRY, f"{label}: has neither a bbox nor a polygon segmentation{rle}")
        return None
    tol = BBOX_TOLERANCE_PX
    if x < -tol or y < -tol or x + w > image.width + tol or y + h > image.height + tol:
        problems.add(
            Problem.BBOX_OUTSIDE_IMAGE,
            f"{label}: {what} {_fmt_box([x, y, w, h])} extends outside image "
            f"id {image.id} ({image.width}x{image.height})",
        )
        return None
    x0, y0 = max(x, 0.0), max(y, 0.0)
    box = (x0, y0, min(x + w, image.width) - x0, min(y + h, image.height) - y0)
    given_area = raw.get("area")
    if _is_number(given_area) and given_area > 0:  # type: ignore[operator]
        area = float(given_area)  # type: ignore[arg-type]
    return box, area


def _group(raw: dict[str, object]) -> str | None:
    """The image's group key ("" when none is given); None when the field holds something else."""
    for key in GROUP_KEYS:
        value = raw.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, str) or _is_int(value):
            return f"{key}:{value}"
        return None
    return ""


# exact type checks: JSON yields only int and float, and bool (an int subclass) must not pass as a number
def _is_int(value: object) -> bool:
    return type(value) is int


def _is_number(value: object) -> bool:
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))  # type: ignore[arg-type]


def _is_whole_positive(value: object) -> bool:
    return _is_number(value) and value > 0 and float(value).is_integer()  # type: ignore[operator,arg-type]


def _json_type(value: object) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt_box(values: Sequence[object]) -> str:
    def fmt(v: object) -> str:
        return (
            str(int(v))
            if isinstance(v, float) and v.is_integer()
            else (f"{v:g}" if isinstance(v, float) else str(v))
        )

    return "[" + ", ".join(fmt(v) for v in values) + "]"
