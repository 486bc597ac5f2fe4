"""Which files make a dataset, and which paths may name it: one rule for Create and for the trainer worker.

A dataset is a directory below the configured dataset root (an fsspec URL), named by a *dataset reference*.
``choose_layout`` decides which annotation files in it are used; Create-time validation
(``common/dataset_refs.py``) and the worker's preparation (``trainer_worker/adapters/dataset_source.py``)
both call it through ``dataset_refs.find_layout``, so a dataset Create accepts is one the worker can train
and the other way round. The rule is the one the worker trains with::

    <ref>/train.json + <ref>/val.json [+ <ref>/test.json]   already split: kept as given; these win
                                                             over an annotations.json next to them
    <ref>/annotations.json                                   one COCO file: the run splits it (seeded)

A split dataset needs both ``train.json`` and ``val.json`` (training validates every epoch and picks its
best checkpoint on val); one without the other is refused, whatever else the directory holds.

Two path rules, deliberately different:

* a dataset reference names storage, so it uses the artifact-key charset (``normalize_key``: each segment
  ``[A-Za-z0-9._-]+``, no ``.``/``..``), checked before anything touches storage;
* an image ``file_name`` inside an annotation file is the annotator's data (spaces, accents, any printable
  name), so ``confined_relative_path`` only confines it: relative, ``/``-separated, no ``..``.

Both are checked lexically here; on a local root ``dataset_refs.DatasetRoot.contains`` also resolves
symbolic links, which the text alone cannot show.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from common.artifacts import normalize_key
from common.errors import InvalidArgument

ANNOTATIONS_FILE = "annotations.json"
SPLIT_NAMES = ("train", "val", "test")
REQUIRED_SPLITS = ("train", "val")
UNSPLIT = "all"  # the layout key of a single annotations.json
MAX_REF_CHARS = 500
LAYOUT_HINT = (
    "a directory with annotations.json (one COCO file, split by the run) or train.json and val.json "
    "(and optionally test.json), and the images their file_name fields name"
)


def split_file(split: str) -> str:
    return f"{split}.json"


CANDIDATE_FILES = (ANNOTATIONS_FILE, *(split_file(s) for s in SPLIT_NAMES))


@dataclass(frozen=True)
class DatasetLayout:
    """A dataset's annotation files: split name -> file name, ``{"train": "train.json", "val": "val.json"
    [, "test": "test.json"]}`` for a split dataset, ``{"all": "annotations.json"}`` for one the run splits."""

    ref: str  # normalized dataset reference
    files: Mapping[str, str]

    @property
    def given_split(self) -> bool:
        return UNSPLIT not in self.files

    @property
    def category_file(self) -> str:
        """The file whose categories are the dataset's (the worker requires every split file to agree)."""
        return self.files.get("train") or self.files[UNSPLIT]


def choose_layout(ref: str, present: Collection[str]) -> DatasetLayout:
    """The layout of dataset ``ref`` given the candidate file names (``CANDIDATE_FILES``) in its directory.

    Raises:
        InvalidArgument: a split file is missing, or there are no annotations at all.
    """
    if any(split_file(s) in present for s in REQUIRED_SPLITS):
        missing = [split_file(s) for s in REQUIRED_SPLITS if split_file(s) not in present]
        if missing:
            raise InvalidArgument(
                f"dataset {ref!r} is split but lacks {' and '.join(missing)}: provide train.json "
                "and val.json (test.json optional), or a single annotations.json"
            )
        return DatasetLayout(ref, {s: split_file(s) for s in SPLIT_NAMES if split_file(s) in present})
    if ANNOTATIONS_FILE in present:
        return DatasetLayout(ref, {UNSPLIT: ANNOTATIONS_FILE})
    raise InvalidArgument(
        f"dataset {ref!r} holds no annotations.json (nor train.json + val.json): "
        "upload COCO annotations first"
    )


def normalize_dataset_ref(ref: str) -> str:
    """The ref when it is a confined relative path (the artifact key charset), else InvalidArgument."""
    if isinstance(ref, str) and len(ref) > MAX_REF_CHARS:
        raise InvalidArgument(f"dataset reference is longer than {MAX_REF_CHARS} characters")
    # "waste/v1/" names the same directory as "waste/v1"
    directory = ref[:-1] if isinstance(ref, str) and ref.endswith("/") else ref
    return normalize_key(directory, "dataset reference")


def confined_relative_path(path: object) -> str:
    """Normalize a path that must stay below a directory; raise ValueError with the reason otherwise."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError("must be a non-empty string")
    if any(ord(ch) < 32 for ch in path):
        raise ValueError("contains control characters")
    if "://" in path or (len(path) >= 2 and path[1] == ":" and path[0].isalpha()):
        raise ValueError("must be a relative path, not a URL or drive path")
    if "\\" in path:
        raise ValueError("must use '/' as separator")
    if path.startswith("/") or path.startswith("~"):
        raise ValueError("must be relative, not absolute")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError("must not contain '..'")
    if not parts:
        raise ValueError("must name something below the directory")
    return "/".join(parts)
