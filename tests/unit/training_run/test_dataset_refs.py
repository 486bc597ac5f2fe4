"""Dataset references stay inside the dataset root and must hold COCO annotations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.dataset_refs import read_category_names, resolve_dataset_ref
from common.errors import InvalidArgument, NotFound


@pytest.fixture
def root(tmp_path: Path) -> str:
    (tmp_path / "ds" / "waste" / "v1").mkdir(parents=True)
    categories = [{"id": 3, "name": "bag"}, {"id": 1, "name": "bottle"}, {"id": 2, "name": 'tire / "odd"'}]
    (tmp_path / "ds" / "waste" / "v1" / "annotations.json").write_text(json.dumps({"categories": categories}))
    (tmp_path / "ds" / "split").mkdir()
    (tmp_path / "ds" / "split" / "train.json").write_text(
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
