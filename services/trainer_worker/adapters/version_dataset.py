"""Builds a run's train/val/test COCO files from a dataset version's frozen split.

The version was validated, split and profiled once by its preparation (``version_preparation.py``); a run on
it never re-splits. The split manifest (``file_names`` per split) is read from the artifact store and checked
against the sha256 the job carries; the version's annotation files and images come from its content-addressed
files (``{blob_prefix}/{sha256}``), each verified against its sha256; the split is checked against the
version's ``split_sha256``. The run's classes (``class_names``, default all) are selected as for a plain
dataset reference, so category ids are 1..N in the run's order. A mismatch anywhere means the stored version
is damaged, not the run's fault: ``DatasetInvalid`` with a message saying so.

Blocking: runs in a worker thread.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common.artifacts import ArtifactStore
from common.dataset_layout import SPLIT_NAMES, UNSPLIT
from common.errors import NotFound
from common.proto.raven.v1 import events_pb2
from services.trainer_worker.adapters.dataset_source import (
    IO_THREADS,
    MANIFEST_FILE,
    write_json,
    write_splits,
)
from services.trainer_worker.adapters.version_preparation import (
    VersionFilesChanged,
    read_blob,
    read_file_manifest,
)
from services.trainer_worker.domain.coco import CocoDataset, parse_coco
from services.trainer_worker.domain.dataset import PreparedDataset, select_classes
from services.trainer_worker.domain.problems import DatasetInvalid, ProblemLog
from services.trainer_worker.domain.version_split import split_sha256

IMAGES_DIR = "images"


def prepare_version_dataset(
    store: ArtifactStore,
    version: events_pb2.TrainingDatasetVersion,
    work_dir: Path,
    *,
    class_names: Sequence[str] | None = None,
) -> PreparedDataset:
    """The version's frozen split as mmdet-ready COCO files under ``work_dir``, images under ``images/``.

    Raises:
        DatasetInvalid: the stored version is damaged, or the run's classes are not the version's.
    """
    try:
        return _prepare(store, version, work_dir, class_names)
    except VersionFilesChanged as exc:
        raise DatasetInvalid(
            f"dataset version {version.name} is damaged in the artifact store ({exc}); create the version "
            "again and start a new run on it"
        ) from None


def _prepare(
    store: ArtifactStore,
    version: events_pb2.TrainingDatasetVersion,
    work_dir: Path,
    class_names: Sequence[str] | None,
) -> PreparedDataset:
    manifest = _split_manifest(store, version)
    files = read_file_manifest(store, version.file_manifest.uri, version.file_manifest.sha256)
    layout = _annotation_files(version)
    problems = ProblemLog()
    parsed: dict[str, CocoDataset] = {}
    for split, name in layout.items():
        if name not in files:
            raise VersionFilesChanged(f"its annotation file {name!r} is not among its files")
        found = parse_coco(json.loads(read_blob(store, version.blob_prefix, files[name])), name, problems)
        if found is None:
            raise VersionFilesChanged(f"its annotation file {name!r} no longer parses")
        parsed[split] = found
    names, selected = select_classes(parsed, class_names, problems)
    problems.raise_if_any(f"dataset version {version.name}")
    splits = _frozen_splits(selected, manifest["file_names"])
    if split_sha256(splits) != version.split_sha256:
        raise VersionFilesChanged("its split does not match the version's split_sha256")
    work_dir.mkdir(parents=True, exist_ok=True)
    image_root = work_dir / IMAGES_DIR
    _fetch_images(store, version.blob_prefix, files, splits, image_root)
    paths = write_splits(splits, work_dir)
    run_manifest = {
        **{k: v for k, v in manifest.items() if k not in ("leaks", *SPLIT_NAMES)},
        "split_source": "dataset_version",
        "dataset_version": version.name,
        "snapshot_sha256": version.snapshot_sha256,
        "split_sha256": version.split_sha256,
        "class_names": list(names),
        **{s: [i.id for i in splits[s].images] for s in SPLIT_NAMES},
        "file_names": {s: sorted(i.file_name for i in splits[s].images) for s in SPLIT_NAMES},
        # what the fine-tune guard compares with a later run's val/test images
        "train_sha256": sorted({files[i.file_name]["sha256"] for i in splits["train"].images}),
    }
    counts = {s: len(splits[s].images) for s in SPLIT_NAMES}
    counts["images"] = sum(counts.values())
    counts["annotations"] = sum(len(ds.annotations) for ds in splits.values())
    return PreparedDataset(
        image_root=image_root.resolve(),
        train_ann=paths["train"],
        val_ann=paths["val"],
        test_ann=paths.get("test"),
        class_names=names,
        snapshot_sha256=version.snapshot_sha256,
        manifest_path=write_json(work_dir / MANIFEST_FILE, run_manifest),
        counts=counts,
    )


def _split_manifest(store: ArtifactStore, version: events_pb2.TrainingDatasetVersion) -> dict[str, Any]:
    try:
        data = store.read_bytes(version.split_manifest.uri)
    except NotFound:
        raise VersionFilesChanged("its split manifest is missing") from None
    if hashlib.sha256(data).hexdigest() != version.split_manifest.sha256:
        raise VersionFilesChanged("its split manifest does not match its recorded sha256")
    manifest = json.loads(data)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("file_names"), dict):
        raise VersionFilesChanged("its split manifest has no file_names")
    return manifest


def _annotation_files(version: events_pb2.TrainingDatasetVersion) -> dict[str, str]:
    if version.annotations_file:
        return {UNSPLIT: version.annotations_file}
    return {f.split: f.annotations_file for f in version.own_split}


def _frozen_splits(
    selected: Mapping[str, CocoDataset], file_names: Mapping[str, Sequence[str]]
) -> dict[str, CocoDataset]:
    """Each split as the manifest lists it: from the one annotation file, or from the split's own file."""
    splits: dict[str, CocoDataset] = {}
    for split in SPLIT_NAMES:
        wanted = list(file_names.get(split, ()))
        source = selected[UNSPLIT] if UNSPLIT in selected else selected.get(split)
        if source is None:
            if wanted:
                raise VersionFilesChanged(
                    f"its split manifest lists {split} images it has no annotations for"
                )
            splits[split] = CocoDataset(next(iter(selected.values())).categories, (), ())
            continue
        ids = {i.file_name: i.id for i in source.images}
        unknown = [n for n in wanted if n not in ids]
        if unknown:
            raise VersionFilesChanged(f"its split manifest names {unknown[0]!r}, which its annotations lack")
        splits[split] = source.subset(ids[n] for n in wanted)
    return splits


def _fetch_images(
    store: ArtifactStore,
    blob_prefix: str,
    files: Mapping[str, Mapping[str, Any]],
    splits: Mapping[str, CocoDataset],
    image_root: Path,
) -> None:
    """Copy every image of the splits from the content-addressed store, each verified by its sha256. The file
    names were confined to the version by ``parse_coco``."""
    names = sorted({i.file_name for ds in splits.values() for i in ds.images})
    missing = [n for n in names if n not in files]
    if missing:
        raise VersionFilesChanged(f"image {missing[0]!r} is not among its files")

    def fetch(name: str) -> None:
        target = image_root / name
        entry = files[name]
        if target.is_file() and target.stat().st_size == entry["size"]:
            if hashlib.sha256(target.read_bytes()).hexdigest() == entry["sha256"]:
                return  # an earlier attempt of the run fetched it
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(read_blob(store, blob_prefix, entry))

    with ThreadPoolExecutor(IO_THREADS, thread_name_prefix="version-fetch") as pool:
        list(pool.map(fetch, names))
