"""Dataset references stay inside the dataset root and must hold COCO annotations, in a layout the trainer
worker accepts too (one rule: ``common.dataset_layout.choose_layout``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.dataset_refs import read_category_names, resolve_dataset_ref
from common.errors import AppError, InvalidArgument, NotFound
from services.trainer_worker.adapters.dataset_source import resolve_dataset_ref as worker_resolve_dataset_ref
from services.trainer_worker.domain.problems import DatasetInvalid


@pytest.fixture
def root(tmp_path: Path) -> str:
    (tmp_path / "ds" / "waste" / "v1").mkdir(parents=True)
    categories = [{"id": 3, "name": "bag"}, {"id": 1, "name": "bottle"}, {"id": 2, "name": 'tire / "odd"'}]
    (tmp_path / "ds" / "waste" / "v1" / "annotations.json").write_text(json.dumps({"categories": categories}))
    (tmp_path / "ds" / "split").mkdir()
    for split in ("train", "val"):
        (tmp_path / "ds" / "split" / f"{split}.json").write_text(
            json.dumps({"categories": [{"id": 1, "name": "a"}]})
        )
    (tmp_path / "ds" / "empty").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "annotations.json").write_text("{}")
    return f"file://{tmp_path / 'ds'}"


def test_resolves_relative_refs_and_reads_categories_by_id(root: str) -> None:
    assert resolve_dataset_ref(root, "waste/v1/") == "waste/v1"
    assert read_category_names(root, "waste/v1") == ["bottle", 'tire / "odd"', "bag"]
    assert read_category_names(root, "split") == ["a"]


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "  ",
        "../outside",
        "waste/../../outside",
        "/etc",
        "file:///etc",
        "s3://bucket/x",
        "waste\\v1",
        "~/x",
        "waste/./v1",
        "a\x00b",
    ],
)
def test_rejects_refs_that_could_escape(root: str, ref: str) -> None:
    with pytest.raises(InvalidArgument):
        resolve_dataset_ref(root, ref)


def test_missing_dataset_or_annotations(root: str) -> None:
    with pytest.raises(NotFound):
        resolve_dataset_ref(root, "waste/v9")
    with pytest.raises(InvalidArgument, match=r"annotations\.json"):
        resolve_dataset_ref(root, "empty")


def test_a_split_dataset_needs_train_and_val(root: str, tmp_path: Path) -> None:
    (tmp_path / "ds" / "train-only").mkdir()
    (tmp_path / "ds" / "train-only" / "train.json").write_text(json.dumps({"categories": []}))
    with pytest.raises(InvalidArgument, match=r"lacks val\.json"):
        resolve_dataset_ref(root, "train-only")


CANDIDATES = ("annotations.json", "train.json", "val.json", "test.json")
LAYOUTS = [
    tuple(name for i, name in enumerate(CANDIDATES) if mask >> i & 1) for mask in range(1 << len(CANDIDATES))
]


@pytest.mark.parametrize("files", LAYOUTS, ids=lambda files: "+".join(files) or "nothing")
def test_create_accepts_a_layout_exactly_when_the_worker_does(tmp_path: Path, files: tuple[str, ...]) -> None:
    """Every combination of annotation files: Create and the worker agree, and Create reads its classes from
    the file the worker trains with (train.json of a split dataset, else annotations.json)."""
    (tmp_path / "ds" / "d").mkdir(parents=True)
    for name in files:
        category = {"id": 1, "name": name.removesuffix(".json")}
        (tmp_path / "ds" / "d" / name).write_text(json.dumps({"categories": [category]}))
    url = f"file://{tmp_path / 'ds'}"
    try:
        resolve_dataset_ref(url, "d")
        create_accepts = True
    except AppError:
        create_accepts = False
    try:
        worker_resolve_dataset_ref(url, "d")
        worker_accepts = True
    except DatasetInvalid:
        worker_accepts = False
    split = "train.json" in files or "val.json" in files
    expected = ("train.json" in files and "val.json" in files) if split else "annotations.json" in files
    assert create_accepts == worker_accepts == expected
    if create_accepts:
        assert read_category_names(url, "d") == ["train" if split else "annotations"]


def test_a_json_list_and_duplicate_category_names_are_named_in_the_file(tmp_path: Path) -> None:
    (tmp_path / "listed").mkdir()
    (tmp_path / "listed" / "annotations.json").write_text(json.dumps([{"id": 1, "name": "a"}]))
    (tmp_path / "twice").mkdir()
    twice = {"categories": [{"id": 1, "name": "bottle"}, {"id": 4, "name": "bottle"}]}
    (tmp_path / "twice" / "annotations.json").write_text(json.dumps(twice))
    url = tmp_path.as_uri()
    with pytest.raises(InvalidArgument) as listed:
        read_category_names(url, "listed")
    assert listed.value.message == (
        "dataset 'listed': annotations.json must be a COCO object "
        '({"images": [...], "annotations": [...], "categories": [...]}), not a JSON array'
    )
    with pytest.raises(InvalidArgument) as dup:
        read_category_names(url, "twice")
    assert dup.value.message == (
        "dataset 'twice': annotations.json: category name 'bottle' is used by ids 1 and 4: "
        "give each category its own name"
    )
    assert "class_names" not in dup.value.message
