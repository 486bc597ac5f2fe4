"""COCO validation rules: each kind of malformed input is reported with its own precise reason."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import pytest

from common.dataset_layout import confined_relative_path
from services.trainer_worker.domain.coco import parse_coco, polygon_envelope
from services.trainer_worker.domain.dataset import select_classes
from services.trainer_worker.domain.problems import DatasetInvalid, Problem, ProblemLog

Doc = dict[str, Any]


def valid_doc() -> Doc:
    return {
        "images": [
            {"id": 1, "file_name": "images/a.jpg", "width": 320, "height": 240},
            {"id": 2, "file_name": "images/b.jpg", "width": 320, "height": 240},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [5, 5, 40, 20]},
            {"id": 11, "image_id": 2, "category_id": 2, "segmentation": [[10, 10, 60, 10, 60, 50, 10, 50]]},
        ],
        "categories": [{"id": 1, "name": "bottle"}, {"id": 2, "name": "tire"}],
    }


def validate(doc: object, class_names: list[str] | None = None) -> Any:
    """Parse + class selection as the adapter does it; raises DatasetInvalid with every problem."""
    problems = ProblemLog()
    parsed = parse_coco(doc, "annotations.json", problems)
    problems.raise_if_any("dataset 'ds'")
    assert parsed is not None
    names, selected = select_classes({"all": parsed}, class_names, problems)
    problems.raise_if_any("dataset 'ds'")
    return names, selected["all"]


def edit(change: Callable[[Doc], None]) -> Doc:
    doc = copy.deepcopy(valid_doc())
    change(doc)
    return doc


def ann(doc: Doc, n: int = 0) -> dict[str, Any]:
    return doc["annotations"][n]


CASES: list[tuple[str, object, Problem, str]] = [
    ("not an object", [1, 2], Problem.NOT_OBJECT, "top level is a JSON array"),
    ("missing images", edit(lambda d: d.pop("images")), Problem.MISSING_KEY, "key(s) images missing"),
    (
        "categories not a list",
        edit(lambda d: d.update(categories={})),
        Problem.MISSING_KEY,
        "categories missing",
    ),
    (
        "no annotations",
        edit(lambda d: d.update(annotations=[])),
        Problem.NO_ANNOTATIONS,
        "contains no annotations",
    ),
    (
        "duplicate image id",
        edit(lambda d: d["images"].append({**d["images"][0], "file_name": "images/c.jpg"})),
        Problem.DUPLICATE_IMAGE_ID,
        "image id 1 appears more than once",
    ),
    (
        "duplicate annotation id",
        edit(lambda d: d["annotations"].append(dict(ann(d)))),
        Problem.DUPLICATE_ANNOTATION_ID,
        "annotation id 10 appears more than once",
    ),
    (
        "duplicate category id",
        edit(lambda d: d["categories"].append({"id": 2, "name": "bag"})),
        Problem.DUPLICATE_CATEGORY_ID,
        "category id 2 is used by 'tire' and 'bag'",
    ),
    (
        "duplicate category name",
        edit(lambda d: d["categories"].append({"id": 3, "name": "tire"})),
        Problem.DUPLICATE_CATEGORY_NAME,
        "category name 'tire' is used by ids 2 and 3",
    ),
    (
        "unknown image",
        edit(lambda d: ann(d).update(image_id=99)),
        Problem.UNKNOWN_IMAGE,
        "annotation id 10: image_id 99 is not in images",
    ),
    (
        "unknown category",
        edit(lambda d: ann(d).update(category_id=7)),
        Problem.UNKNOWN_CATEGORY,
        "annotation id 10: category_id 7 is not in categories",
    ),
    (
        "zero width bbox",
        edit(lambda d: ann(d).update(bbox=[5, 5, 0, 20])),
        Problem.BBOX_NON_POSITIVE,
        "annotation id 10: bbox [5, 5, 0, 20] has non-positive width or height",
    ),
    (
        "negative height bbox",
        edit(lambda d: ann(d).update(bbox=[5, 5, 10, -2])),
        Problem.BBOX_NON_POSITIVE,
        "bbox [5, 5, 10, -2] has non-positive",
    ),
    (
        "bbox outside image",
        edit(lambda d: ann(d).update(bbox=[5, 5, 400, 20])),
        Problem.BBOX_OUTSIDE_IMAGE,
        "annotation id 10: bbox [5, 5, 400, 20] extends outside image id 1 (320x240)",
    ),
    (
        "bbox negative origin",
        edit(lambda d: ann(d).update(bbox=[-3, 5, 10, 20])),
        Problem.BBOX_OUTSIDE_IMAGE,
        "bbox [-3, 5, 10, 20] extends outside image id 1",
    ),
    (
        "polygon outside image",
        edit(lambda d: ann(d, 1).update(segmentation=[[300, 10, 330, 10, 330, 50]])),
        Problem.BBOX_OUTSIDE_IMAGE,
        "annotation id 11: polygon envelope [300, 10, 30, 40] extends outside image id 2",
    ),
    (
        "bbox with 3 numbers",
        edit(lambda d: ann(d).update(bbox=[1, 2, 3])),
        Problem.BBOX_MALFORMED,
        "bbox [1, 2, 3] must be 4 finite numbers",
    ),
    (
        "bbox with NaN",
        edit(lambda d: ann(d).update(bbox=[1, 2, math.nan, 4])),
        Problem.BBOX_MALFORMED,
        "must be 4 finite numbers",
    ),
    (
        "bbox with string",
        edit(lambda d: ann(d).update(bbox=["1", 2, 3, 4])),
        Problem.BBOX_MALFORMED,
        "bbox ['1', 2, 3, 4]",
    ),
    (
        "image without width",
        edit(lambda d: d["images"][0].pop("width")),
        Problem.IMAGE_SIZE_INVALID,
        "image id 1 (images/a.jpg): width and height must be positive integers, got Nonex240",
    ),
    (
        "image with zero height",
        edit(lambda d: d["images"][1].update(height=0)),
        Problem.IMAGE_SIZE_INVALID,
        "got 320x0",
    ),
    (
        "empty category",
        edit(lambda d: d["categories"].append({"id": 3, "name": "bag"})),
        Problem.EMPTY_CATEGORY,
        "category 'bag' (id 3) has no annotations",
    ),
    (
        "no geometry",
        edit(lambda d: ann(d).pop("bbox")),
        Problem.NO_GEOMETRY,
        "annotation id 10: has neither a bbox nor a polygon segmentation",
    ),
    (
        "RLE without bbox",
        edit(lambda d: ann(d).update(bbox=[], segmentation={"counts": "abc", "size": [240, 320]})),
        Problem.NO_GEOMETRY,
        "(an RLE mask needs an explicit bbox)",
    ),
    (
        "two-point polygon",
        edit(lambda d: ann(d, 1).update(segmentation=[[10, 10, 60, 10]])),
        Problem.DEGENERATE_POLYGON,
        "annotation id 11: polygon 0 has 2 point(s); a polygon needs at least 3",
    ),
    (
        "collinear polygon",
        edit(lambda d: ann(d, 1).update(segmentation=[[10, 10, 20, 20, 30, 30]])),
        Problem.DEGENERATE_POLYGON,
        "polygon 0 has zero area",
    ),
    (
        "odd polygon",
        edit(lambda d: ann(d, 1).update(segmentation=[[10, 10, 20, 20, 30]])),
        Problem.DEGENERATE_POLYGON,
        "odd number of coordinates (5)",
    ),
    (
        "flat segmentation",
        edit(lambda d: ann(d, 1).update(segmentation=[10, 10, 60, 10, 60, 50])),
        Problem.DEGENERATE_POLYGON,
        "segmentation must be a list of polygons",
    ),
    (
        "file_name with ..",
        edit(lambda d: d["images"][0].update(file_name="../x.jpg")),
        Problem.FILE_NAME_ESCAPES,
        "image id 1: file_name '../x.jpg' must not contain '..'",
    ),
    (
        "absolute file_name",
        edit(lambda d: d["images"][0].update(file_name="/etc/passwd")),
        Problem.FILE_NAME_ESCAPES,
        "file_name '/etc/passwd' must be relative",
    ),
    (
        "URL file_name",
        edit(lambda d: d["images"][0].update(file_name="s3://other/x.jpg")),
        Problem.FILE_NAME_ESCAPES,
        "must be a relative path, not a URL",
    ),
    (
        "malformed annotation",
        edit(lambda d: ann(d).update(image_id="1")),
        Problem.MALFORMED_ANNOTATION,
        "annotations[0] needs integer id, image_id and category_id",
    ),
    (
        "malformed category",
        edit(lambda d: d["categories"].append({"id": 3, "name": ""})),
        Problem.MALFORMED_CATEGORY,
        "categories[2] needs an integer id and a non-empty name",
    ),
]


@pytest.mark.parametrize(("doc", "kind", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_malformed_input_is_reported_with_its_reason(doc: object, kind: Problem, reason: str) -> None:
    with pytest.raises(DatasetInvalid) as caught:
        validate(doc)
    assert caught.value.kinds == (kind,), caught.value
    assert any(reason in d for d in caught.value.details), caught.value.details
    assert kind.value in caught.value.message
    assert caught.value.message.startswith("dataset 'ds' is invalid (1 problem")


def test_valid_doc_passes_and_polygon_only_annotation_gets_its_envelope() -> None:
    names, ds = validate(valid_doc())
    assert names == ("bottle", "tire")
    by_id = {a.id: a for a in ds.annotations}
    assert by_id[10].bbox == (5.0, 5.0, 40.0, 20.0)
    assert by_id[11].bbox == (10.0, 10.0, 50.0, 40.0)
    assert by_id[11].area == 50 * 40


def test_tiny_overshoot_is_tolerated_and_clipped() -> None:
    doc = edit(lambda d: ann(d).update(bbox=[300.0, 200.0, 20.004, 40.001]))
    _, ds = validate(doc)
    assert ds.annotations[0].bbox == pytest.approx((300.0, 200.0, 20.0, 40.0))


def test_only_first_ten_items_are_listed_with_a_count_of_the_rest() -> None:
    doc = valid_doc()
    doc["annotations"] += [
        {"id": 100 + n, "image_id": 1, "category_id": 1, "bbox": [n, 0, 0, 5]} for n in range(25)
    ]
    doc["annotations"].append({"id": 500, "image_id": 42, "category_id": 1, "bbox": [0, 0, 1, 1]})
    with pytest.raises(DatasetInvalid) as caught:
        validate(doc)
    err = caught.value
    assert len(err.details) == 11
    assert err.details[0].endswith("annotation id 100: bbox [0, 0, 0, 5] has non-positive width or height")
    assert err.details[-1] == "... and 16 more"
    summary = (
        "26 problems: bbox with non-positive width or height (25), annotation points at an unknown image (1)"
    )
    assert summary in err.message
    assert set(err.kinds) == {Problem.BBOX_NON_POSITIVE, Problem.UNKNOWN_IMAGE}


def test_annotations_of_a_broken_image_are_not_reported_twice() -> None:
    doc = edit(lambda d: d["images"][0].update(file_name="../a.jpg"))
    with pytest.raises(DatasetInvalid) as caught:
        validate(doc)
    assert caught.value.kinds == (Problem.FILE_NAME_ESCAPES,)


def test_class_names_select_and_renumber_categories() -> None:
    doc = edit(lambda d: d["categories"].insert(0, {"id": 7, "name": "bag"}))
    doc["annotations"].append({"id": 12, "image_id": 1, "category_id": 7, "bbox": [100, 100, 10, 10]})
    names, ds = validate(doc, ["tire", "bag"])
    assert names == ("tire", "bag")
    assert [(c.id, c.name) for c in ds.categories] == [(1, "tire"), (2, "bag")]
    assert sorted((a.id, a.category_id) for a in ds.annotations) == [(11, 1), (12, 2)]


@pytest.mark.parametrize(
    ("class_names", "reason"),
    [
        (["tire", "plastic"], "class 'plastic' is not a category of the dataset"),
        (["tire", "tire"], "class 'tire' is requested 2 times"),
        ([], "the requested class list is empty"),
    ],
)
def test_bad_class_lists_are_rejected(class_names: list[str], reason: str) -> None:
    with pytest.raises(DatasetInvalid) as caught:
        validate(valid_doc(), class_names)
    assert Problem.CLASS_LIST in caught.value.kinds
    assert any(reason in d for d in caught.value.details)


def test_polygon_envelope_covers_all_polygons() -> None:
    box, area = polygon_envelope([[0, 0, 4, 0, 4, 3], [10, 10, 12, 10, 12, 14, 10, 14]])
    assert box == (0.0, 0.0, 12.0, 14.0)
    assert area == pytest.approx(6 + 8)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "  ",
        "../x",
        "a/../../x",
        "/abs",
        "~/x",
        "http://host/x",
        "C:/x",
        "a\\b.jpg",
        "a/\n.jpg",
        ".",
        "./",
    ],
)
def test_confined_relative_path_rejects_escapes(path: str) -> None:
    with pytest.raises(ValueError):
        confined_relative_path(path)


def test_confined_relative_path_normalizes() -> None:
    assert confined_relative_path("./images//a b.jpg") == "images/a b.jpg"
    assert confined_relative_path("ds/2024-05-01") == "ds/2024-05-01"
