"""What dataset preparation yields, and the choice of classes across a dataset's annotation files.

The rules live next door: COCO parsing and validation in ``coco.py``, problem reporting in ``problems.py``,
the seeded split and its manifest in ``split.py``. Which annotation files make a dataset (``train.json`` +
``val.json`` [+ ``test.json``], else ``annotations.json``), and the path rules for references and image
file names, are ``common/dataset_layout.py``: Create applies the same rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from services.trainer_worker.domain.coco import Category, CocoDataset
from services.trainer_worker.domain.problems import Problem, ProblemLog


@dataclass(frozen=True)
class PreparedDataset:
    image_root: Path  # local directory the prepared json file_names are relative to
    train_ann: Path
    val_ann: Path
    test_ann: Path | None  # None when the test split is empty
    class_names: tuple[str, ...]  # ordered by (remapped) category id 1..N
    snapshot_sha256: str
    manifest_path: Path
    counts: dict[str, int]  # images per split, "images" and "annotations" totals
    stage_seconds: dict[str, float] = field(default_factory=dict, compare=False)


def select_classes(
    datasets: Mapping[str, CocoDataset], class_names: Sequence[str] | None, problems: ProblemLog
) -> tuple[tuple[str, ...], dict[str, CocoDataset]]:
    """Keep ``class_names`` (default: all, by category id) numbered 1..N; report unknown and empty classes."""
    sources = list(datasets)
    reference = datasets[sources[0]].categories
    for name in sources[1:]:
        if datasets[name].categories != reference:
            problems.add(
                Problem.SPLITS_DISAGREE,
                f"{name}: categories differ from {sources[0]}: "
                f"{_cat_list(datasets[name].categories)} vs {_cat_list(reference)}",
            )
    by_name = {c.name: c.id for c in reference}
    wanted = list(class_names) if class_names is not None else [c.name for c in reference]
    for name, count in Counter(wanted).items():
        if name not in by_name:
            problems.add(
                Problem.CLASS_LIST,
                f"class {name!r} is not a category of the dataset "
                f"(categories: {', '.join(map(repr, by_name))})",
            )
        elif count > 1:
            problems.add(Problem.CLASS_LIST, f"class {name!r} is requested {count} times")
    if class_names is not None and not wanted:
        problems.add(Problem.CLASS_LIST, "the requested class list is empty")
    names = tuple(dict.fromkeys(n for n in wanted if n in by_name))
    new_id = {by_name[n]: i for i, n in enumerate(names, start=1)}
    categories = tuple(Category(i, n) for i, n in enumerate(names, start=1))
    selected = {
        split: CocoDataset(
            categories,
            ds.images,
            tuple(
                a if new_id[a.category_id] == a.category_id else replace(a, category_id=new_id[a.category_id])
                for a in ds.annotations
                if a.category_id in new_id
            ),
        )
        for split, ds in datasets.items()
    }
    used = Counter(a.category_id for ds in selected.values() for a in ds.annotations)
    for cat in categories:
        if not used[cat.id]:
            problems.add(
                Problem.EMPTY_CATEGORY, f"category {cat.name!r} (id {by_name[cat.name]}) has no annotations"
            )
    return names, selected


def _cat_list(categories: Sequence[Category]) -> str:
    return ", ".join(f"{c.id}:{c.name!r}" for c in categories)
