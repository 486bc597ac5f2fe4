"""Dataset problems: the kinds, how they are collected, and the one error that reports them all.

Every problem found is collected in a ``ProblemLog`` and raised at once as ``DatasetInvalid``, whose message
an annotator can act on and whose details name the first offending items.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from enum import StrEnum

MAX_REPORTED = 10


class Problem(StrEnum):
    """Kinds of dataset problems; each value is the phrase used in the summary message."""

    NOT_JSON = "file is not valid JSON"
    NOT_OBJECT = "top level is not a JSON object"
    MISSING_KEY = "required key missing or not a list"
    NO_ANNOTATIONS = "no annotations at all"
    MALFORMED_CATEGORY = "malformed category"
    MALFORMED_IMAGE = "malformed image entry"
    MALFORMED_ANNOTATION = "malformed annotation"
    DUPLICATE_CATEGORY_ID = "duplicate category id"
    DUPLICATE_CATEGORY_NAME = "duplicate category name"
    DUPLICATE_IMAGE_ID = "duplicate image id"
    DUPLICATE_ANNOTATION_ID = "duplicate annotation id"
    UNKNOWN_IMAGE = "annotation points at an unknown image"
    UNKNOWN_CATEGORY = "annotation points at an unknown category"
    BBOX_MALFORMED = "malformed bbox"
    BBOX_NON_POSITIVE = "bbox with non-positive width or height"
    BBOX_OUTSIDE_IMAGE = "bbox outside its image"
    IMAGE_SIZE_INVALID = "image without a positive width/height"
    FILE_NAME_ESCAPES = "image file_name escapes the dataset directory"
    IMAGE_MISSING = "image file missing"
    IMAGE_UNREADABLE = "image file unreadable"
    IMAGE_SIZE_MISMATCH = "image size differs from the annotations"
    EMPTY_CATEGORY = "category without annotations"
    NO_GEOMETRY = "annotation with neither bbox nor polygon"
    DEGENERATE_POLYGON = "degenerate polygon"
    CLASS_LIST = "requested class not in the dataset"
    SPLITS_DISAGREE = "split files disagree"
    CLASS_MISSING_FROM_TRAIN = "class absent from the train split"
    SPLIT_TOO_SMALL = "too few images to split"


class DatasetInvalid(Exception):
    """The dataset cannot be trained on; ``message`` says why, ``details`` names the first offending items."""

    def __init__(self, message: str, details: Sequence[str] = (), kinds: Iterable[Problem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)
        self.kinds: tuple[Problem, ...] = tuple(kinds)

    def __str__(self) -> str:
        return "\n  - ".join([self.message, *self.details])


class ProblemLog:
    """Collects problems; keeps the first ``limit`` details and a count per kind."""

    def __init__(self, limit: int = MAX_REPORTED) -> None:
        self._limit = limit
        self._counts: Counter[Problem] = Counter()
        self._details: list[str] = []
        self._files: list[str] = []

    def add(self, kind: Problem, detail: str, file: str = "") -> None:
        """``file``: the dataset file the problem is in, when the detail does not start with it."""
        self._counts[kind] += 1
        if len(self._details) < self._limit:
            self._details.append(detail)
            self._files.append(file)

    def entries(self) -> list[tuple[str, str]]:
        """The kept problems as (file, detail); file "" unless ``add`` named it."""
        return list(zip(self._files, self._details, strict=True))

    def __len__(self) -> int:
        return sum(self._counts.values())

    def raise_if_any(self, subject: str) -> None:
        total = len(self)
        if not total:
            return
        summary = ", ".join(f"{kind.value} ({n})" for kind, n in self._counts.most_common())
        noun = "problem" if total == 1 else "problems"
        message = f"{subject} is invalid ({total} {noun}: {summary}); fix the annotations and upload it again"
        details = list(self._details)
        if total > len(details):
            details.append(f"... and {total - len(details)} more")
        raise DatasetInvalid(message, details, self._counts)
