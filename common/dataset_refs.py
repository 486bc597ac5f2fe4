"""Dataset references confined to the configured fsspec dataset root.

A dataset reference is a relative POSIX path under the dataset root (``waste/v3``) with the same strict
charset as artifact keys (:func:`common.artifacts.normalize_key`), checked before anything touches storage;
it must then name a directory holding ``annotations.json`` (one COCO file) or ``train.json``
(pre-split COCO files).
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import Any

import fsspec

from common.artifacts import normalize_key
from common.errors import InvalidArgument, NotFound

ANNOTATION_FILES = ("annotations.json", "train.json")
LAYOUT_HINT = (
    "a directory with annotations.json (one COCO file, split by the run) or train.json and val.json "
    "(and optionally test.json), and the images their file_name fields name"
)
MAX_REF_CHARS = 500


def normalize_dataset_ref(ref: str) -> str:
    """The ref when it is a confined relative path (the artifact key charset), else InvalidArgument."""
    if isinstance(ref, str) and len(ref) > MAX_REF_CHARS:
        raise InvalidArgument(f"dataset reference is longer than {MAX_REF_CHARS} characters")
    # "waste/v1/" names the same directory as "waste/v1"
    directory = ref[:-1] if isinstance(ref, str) and ref.endswith("/") else ref
    return normalize_key(directory, "dataset reference")


def _open_root(dataset_root_url: str) -> tuple[Any, str]:
    fs, root = fsspec.core.url_to_fs(dataset_root_url.rstrip("/"))
    return fs, root.rstrip("/")


def _ensure_inside(fs: Any, root: str, path: str, ref: str) -> None:
    """On a local root, a symbolic link may not lead out of it (the ref's text alone cannot show that)."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" not in protocols and "local" not in protocols:
        return
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise InvalidArgument(
            f"dataset reference {ref!r} leads out of the dataset root through a symbolic link"
        )


def _annotation_path(dataset_root_url: str, ref: str) -> tuple[Any, str]:
    normalized = normalize_dataset_ref(ref)
    fs, root = _open_root(dataset_root_url)
    directory = f"{root}/{normalized}"
    _ensure_inside(fs, root, directory, ref)
    if not fs.isdir(directory):
        raise NotFound(f"dataset {normalized!r} does not exist under the dataset root")
    for name in ANNOTATION_FILES:
        path = f"{directory}/{name}"
        if fs.isfile(path):
            _ensure_inside(fs, root, path, ref)
            return fs, path
    raise InvalidArgument(
        f"dataset {normalized!r} has no {' or '.join(ANNOTATION_FILES)}: upload COCO annotations first"
    )


def resolve_dataset_ref(dataset_root_url: str, ref: str) -> str:
    """Validate ``ref`` and return its canonical relative form.

    Raises:
        InvalidArgument: the ref is malformed or the dataset has no annotation file.
        NotFound: no such dataset directory under the root.
    """
    _annotation_path(dataset_root_url, ref)
    return normalize_dataset_ref(ref)


def read_category_names(dataset_root_url: str, ref: str) -> list[str]:
    """Category names ordered by category id from the dataset's ``annotations.json`` (or ``train.json``)."""
    fs, path = _annotation_path(dataset_root_url, ref)
    try:
        with fs.open(path, "rb") as handle:
            document = json.load(handle)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(
            f"dataset {ref!r}: {posixpath.basename(path)} is not valid JSON: {exc}"
        ) from exc
    categories = document.get("categories") if isinstance(document, dict) else None
    if not isinstance(categories, list) or not categories:
        raise InvalidArgument(f"dataset {ref!r}: {posixpath.basename(path)} has no 'categories'")
    named: list[tuple[int, str]] = []
    for index, category in enumerate(categories):
        if not isinstance(category, dict) or not isinstance(category.get("name"), str):
            raise InvalidArgument(f"dataset {ref!r}: category #{index} has no string 'name'")
        cat_id = category.get("id", index)
        if not isinstance(cat_id, int) or isinstance(cat_id, bool):
            raise InvalidArgument(f"dataset {ref!r}: category {category['name']!r} has a non-integer id")
        named.append((cat_id, category["name"]))
    return [name for _, name in sorted(named)]
