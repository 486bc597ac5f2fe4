"""Dataset references resolved against the configured fsspec dataset root, for Create and the worker alike.

``find_layout`` confines a reference to the root (``dataset_layout.normalize_dataset_ref`` lexically, then
symbolic links on a local root) and applies the one layout rule (``dataset_layout.choose_layout``) to what
the directory holds. Create uses ``resolve_dataset_ref`` and ``read_dataset_header``; the worker's
``adapters/dataset_source.py`` uses ``DatasetRoot`` and ``find_layout`` directly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import fsspec
from fsspec.implementations.local import LocalFileSystem

from common.dataset_layout import (
    CANDIDATE_FILES,
    LAYOUT_HINT,
    DatasetLayout,
    choose_layout,
    normalize_dataset_ref,
)
from common.errors import InvalidArgument, NotFound

__all__ = [
    "LAYOUT_HINT",
    "DatasetHeader",
    "DatasetRoot",
    "find_layout",
    "read_category_names",
    "read_dataset_header",
    "resolve_dataset_ref",
]


@dataclass(frozen=True)
class DatasetRoot:
    fs: fsspec.AbstractFileSystem
    path: str  # the root as the filesystem spells it
    real: str | None  # the resolved local directory; None for remote stores, which have no symlinks

    @classmethod
    def open(cls, url: str) -> DatasetRoot:
        fs, path = fsspec.core.url_to_fs(url)
        real = os.path.realpath(path) if isinstance(fs, LocalFileSystem) else None
        return cls(fs, path, real)

    def join(self, *parts: str) -> str:
        return "/".join([self.path.rstrip("/"), *parts])

    def contains(self, path: str) -> bool:
        """Whether ``path`` stays inside the root once symbolic links are resolved."""
        if self.real is None:
            return True  # the lexical check already confined the key
        real = os.path.realpath(path)
        return real == self.real or real.startswith(self.real.rstrip(os.sep) + os.sep)


def find_layout(root: DatasetRoot, ref: str) -> DatasetLayout:
    """The layout of dataset ``ref`` under ``root``.

    Raises:
        InvalidArgument: the ref is malformed, leads out of the root, or the layout is incomplete.
        NotFound: no such dataset directory under the root.
    """
    normalized = normalize_dataset_ref(ref)
    directory = root.join(normalized)
    if not root.contains(directory):
        raise InvalidArgument(
            f"dataset {normalized!r} does not exist under the dataset root: it leads out of it through a "
            "symbolic link"
        )
    if not root.fs.isdir(directory):
        raise NotFound(f"dataset {normalized!r} does not exist under the dataset root")
    present = {name for name in CANDIDATE_FILES if root.fs.isfile(root.join(normalized, name))}
    layout = choose_layout(normalized, present)
    for name in layout.files.values():
        if not root.contains(root.join(normalized, name)):
            raise InvalidArgument(
                f"dataset {normalized!r}: {name} leads out of the dataset root through a symbolic link"
            )
    return layout


def resolve_dataset_ref(dataset_root_url: str, ref: str) -> str:
    """Validate ``ref`` and return its canonical relative form.

    Raises:
        InvalidArgument: the ref is malformed or the dataset's layout is not one the worker can train.
        NotFound: no such dataset directory under the root.
    """
    return find_layout(DatasetRoot.open(dataset_root_url), ref).ref


@dataclass(frozen=True)
class DatasetHeader:
    """What Create reads of a dataset directory: its category names (ordered by id) and the images of the
    file they come from (``train.json`` of a split dataset, else the whole ``annotations.json``)."""

    class_names: list[str]
    images: int
    split_given: bool

    def train_images(self, train_fraction: float) -> int:
        """The train split's images: exact for a split dataset, else ``train_fraction`` of all the images
        (the run's split keeps that share, give or take the groups it keeps together)."""
        return self.images if self.split_given else round(self.images * train_fraction)


def read_category_names(dataset_root_url: str, ref: str) -> list[str]:
    """Category names ordered by category id, from the file the worker takes them from (``train.json`` of a
    split dataset, else ``annotations.json``)."""
    return read_dataset_header(dataset_root_url, ref).class_names


def read_dataset_header(dataset_root_url: str, ref: str) -> DatasetHeader:
    """The dataset's category names and image count (:class:`DatasetHeader`), from one read of its file."""
    root = DatasetRoot.open(dataset_root_url)
    layout = find_layout(root, ref)
    name = layout.category_file
    try:
        with root.fs.open(root.join(layout.ref, name), "rb") as handle:
            document = json.load(handle)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"dataset {ref!r}: {name} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidArgument(
            f"dataset {ref!r}: {name} must be a COCO object "
            '({"images": [...], "annotations": [...], "categories": [...]}), '
            f"not a JSON {_json_kind(document)}"
        )
    categories = document.get("categories")
    if not isinstance(categories, list) or not categories:
        raise InvalidArgument(f"dataset {ref!r}: {name} has no 'categories' list")
    named: list[tuple[int, str]] = []
    first_id: dict[str, int] = {}
    for index, category in enumerate(categories):
        if not isinstance(category, dict) or not isinstance(category.get("name"), str):
            raise InvalidArgument(f"dataset {ref!r}: {name}: categories[{index}] has no string 'name'")
        cat_id = category.get("id", index)
        if not isinstance(cat_id, int) or isinstance(cat_id, bool):
            raise InvalidArgument(
                f"dataset {ref!r}: {name}: category {category['name']!r} has a non-integer id"
            )
        if category["name"] in first_id:  # the worker's own check (coco.py) reports the same
            raise InvalidArgument(
                f"dataset {ref!r}: {name}: category name {category['name']!r} is used by ids "
                f"{first_id[category['name']]} and {cat_id}: give each category its own name"
            )
        first_id[category["name"]] = cat_id
        named.append((cat_id, category["name"]))
    images = document.get("images")
    count = len(images) if isinstance(images, list) else 0
    return DatasetHeader([name for _, name in sorted(named)], count, layout.given_split)


def _json_kind(value: object) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
