"""Prepares one dataset version from its files in the artifact store: verify, validate, hash, split, profile.

The version's files are listed by its file manifest (a JSON list of ``{path, size, sha256}``), each stored
under ``{blob_prefix}/{sha256}``. Every file read is re-verified against its sha256; a mismatch is not the
dataset's fault and raises ``VersionFilesChanged``. Every image is decoded once, to the end
(``image_facts``), on a thread pool; the problems of every file are collected and returned at once. The split
and profile rules are the domain's (``domain/version.py``, ``domain/profile.py``); the split manifest and the
split COCO files go to the artifact store under the job's output prefix.

Runs in a worker thread: blocking, and ``progress`` is called from the calling thread between batches.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from common.artifacts import ArtifactStore, StoredArtifact
from common.dataset_layout import SPLIT_NAMES, UNSPLIT
from common.errors import NotFound
from services.trainer_worker.adapters.image_facts import FileFacts, inspect_image, report_image
from services.trainer_worker.domain.coco import CocoDataset, parse_coco
from services.trainer_worker.domain.dataset import select_classes
from services.trainer_worker.domain.duplicates import Fingerprint
from services.trainer_worker.domain.problems import DatasetInvalid, Problem, ProblemLog
from services.trainer_worker.domain.profile import DatasetProfile, profile_dataset
from services.trainer_worker.domain.split import SplitFractions, check_given_split
from services.trainer_worker.domain.version import VersionSplit, split_version

MAX_PROBLEMS = 1000
IO_THREADS = min(16, 2 * (os.cpu_count() or 1))  # decoding is CPU work (Pillow releases the GIL)
IO_BATCH = 16
SPLIT_MANIFEST_FILE = "split_manifest.json"

Progress = Callable[[str, int, int], None]  # (step, done, total): VERIFYING, VALIDATING, SPLITTING, PROFILING


class VersionFilesChanged(Exception):
    """A stored file does not match the version's manifest: the snapshot is damaged, not the dataset."""


@dataclass(frozen=True)
class VersionSpec:
    """What the preparation job says about the version."""

    file_manifest_key: str
    file_manifest_sha256: str  # "" = not checked
    blob_prefix: str
    snapshot_sha256: str
    annotation_files: Mapping[str, str]  # {"all": "annotations.json"} or {"train": ..., "val": ...[, "test"]}
    fractions: SplitFractions
    option_seed: int
    reference_input_size: int
    output_prefix: str


@dataclass(frozen=True)
class PreparedVersion:
    """READY when ``problems`` is empty (then split, profile and manifest are set), else INVALID."""

    problems: tuple[tuple[str, str], ...]  # (file, description), the first MAX_PROBLEMS
    problem_count: int
    summary: str = ""  # the one-line account of the problems
    class_names: tuple[str, ...] = ()
    split: VersionSplit | None = None
    profile: DatasetProfile | None = None
    exif_rotated: tuple[str, ...] = ()
    split_manifest: StoredArtifact | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict, compare=False)


def prepare_version(store: ArtifactStore, spec: VersionSpec, progress: Progress) -> PreparedVersion:
    """Validate every file, split and profile the version; raises ``VersionFilesChanged``."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    files = _file_manifest(store, spec)
    problems = ProblemLog(MAX_PROBLEMS)
    progress("VERIFYING", 0, len(spec.annotation_files))
    docs = {name: _load_json(store, spec, files, name, problems) for name in spec.annotation_files.values()}
    parsed = {
        split: parse_coco(docs[name], name, problems) if docs[name] is not None else None
        for split, name in spec.annotation_files.items()
    }
    datasets = {split: ds for split, ds in parsed.items() if ds is not None}
    if len(datasets) < len(parsed):
        return _invalid(problems, seconds)
    names, selected = select_classes(datasets, None, problems)
    if UNSPLIT not in selected:
        check_given_split(selected, problems)
    seconds["annotations"] = time.perf_counter() - started
    started = time.perf_counter()
    facts = _read_images(store, spec, files, selected, problems, progress)
    seconds["images"] = time.perf_counter() - started
    if len(problems):
        return _invalid(problems, seconds)
    started = time.perf_counter()
    progress("SPLITTING", 0, 1)
    prints = [Fingerprint(n, f.sha256, f.image.phash if f.image else None) for n, f in facts.items()]
    try:
        version = split_version(selected, prints, spec.snapshot_sha256, spec.fractions, spec.option_seed)
    except DatasetInvalid as exc:
        return PreparedVersion((("", exc.message),), 1, exc.message, stage_seconds=seconds)
    seconds["split"] = time.perf_counter() - started
    started = time.perf_counter()
    progress("PROFILING", 0, 1)
    own_ids = _own_category_ids(datasets, names)
    profile = profile_dataset(version.splits, spec.reference_input_size, own_ids)
    rotated = tuple(sorted(n for n, f in facts.items() if f.image and f.image.rotated))
    manifest = version.manifest(names, spec.snapshot_sha256)
    manifest["exif_rotated"] = list(rotated)
    manifest["orientation_rule"] = "EXIF orientation applied, as mmcv.imfrombytes(flag='color') decodes"
    stored = _store_outputs(store, spec.output_prefix, version, manifest)
    seconds["profile_and_store"] = time.perf_counter() - started
    return PreparedVersion((), 0, "", names, version, profile, rotated, stored, seconds)


def _invalid(problems: ProblemLog, seconds: dict[str, float]) -> PreparedVersion:
    try:
        problems.raise_if_any("the dataset version")
    except DatasetInvalid as exc:
        summary = exc.message
    else:  # pragma: no cover - called only with problems
        summary = ""
    return PreparedVersion(tuple(problems.entries()), len(problems), summary, stage_seconds=seconds)


def read_file_manifest(store: ArtifactStore, key: str, sha256: str) -> dict[str, dict[str, Any]]:
    """A version's file manifest by path, checked against ``sha256`` ("" = not checked)."""
    try:
        data = store.read_bytes(key)
    except NotFound:
        raise VersionFilesChanged("the version's file manifest is missing from the artifact store") from None
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise VersionFilesChanged("the version's file manifest does not match its recorded sha256")
    entries = json.loads(data)
    return {e["path"]: e for e in entries}


def read_blob(store: ArtifactStore, blob_prefix: str, entry: Mapping[str, Any]) -> bytes:
    """One file of a version, verified against its sha256 in the manifest."""
    try:
        data = store.read_bytes(f"{blob_prefix}/{entry['sha256']}")
    except NotFound:
        raise VersionFilesChanged(f"stored file {entry['path']!r} is missing from the store") from None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise VersionFilesChanged(f"stored file {entry['path']!r} does not match its sha256 in the manifest")
    return data


def _file_manifest(store: ArtifactStore, spec: VersionSpec) -> dict[str, dict[str, Any]]:
    return read_file_manifest(store, spec.file_manifest_key, spec.file_manifest_sha256)


def _blob(store: ArtifactStore, spec: VersionSpec, entry: Mapping[str, Any]) -> bytes:
    return read_blob(store, spec.blob_prefix, entry)


def _load_json(
    store: ArtifactStore, spec: VersionSpec, files: Mapping[str, Any], name: str, problems: ProblemLog
) -> object:
    if name not in files:
        problems.add(Problem.NOT_JSON, f"{name}: not in the dataset version", name)
        return None
    try:
        return json.loads(_blob(store, spec, files[name]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.add(Problem.NOT_JSON, f"{name}: not valid JSON ({exc})", name)
        return None


def _read_images(
    store: ArtifactStore,
    spec: VersionSpec,
    files: Mapping[str, Any],
    splits: Mapping[str, CocoDataset],
    problems: ProblemLog,
    progress: Progress,
) -> dict[str, FileFacts]:
    """Each referenced file once (thread pool), verified and decoded; problems reported in image id order."""
    records = [(split, image) for split, ds in splits.items() for image in ds.images]
    names = sorted({image.file_name for _, image in records})
    batches = [names[i : i + IO_BATCH] for i in range(0, len(names), IO_BATCH)]
    done = 0
    progress("VALIDATING", 0, len(names))

    def read(batch: list[str]) -> list[FileFacts]:
        return [_read_one(store, spec, files.get(n)) for n in batch]

    facts: dict[str, FileFacts] = {}
    with ThreadPoolExecutor(IO_THREADS, thread_name_prefix="version-io") as pool:
        for batch, result in zip(batches, pool.map(read, batches), strict=True):
            facts.update(zip(batch, result, strict=True))
            done += len(batch)
            progress("VALIDATING", done, len(names))
    prefix = len(splits) > 1
    for split, image in sorted(records, key=lambda r: (r[1].id, r[0])):
        where = "dataset version"
        report_image(image, facts[image.file_name], f"{split}.json: " if prefix else "", problems, where)
    return {n: f for n, f in facts.items() if not f.missing}


def _read_one(store: ArtifactStore, spec: VersionSpec, entry: Mapping[str, Any] | None) -> FileFacts:
    if entry is None:
        return FileFacts(missing=True)
    return FileFacts(sha256=entry["sha256"], image=inspect_image(_blob(store, spec, entry)))


def _own_category_ids(datasets: Mapping[str, CocoDataset], names: tuple[str, ...]) -> dict[int, int]:
    """Selected ids (1..N in ``names`` order) -> the dataset's own category ids."""
    reference = next(iter(datasets.values())).categories
    by_name = {c.name: c.id for c in reference}
    return {i: by_name[n] for i, n in enumerate(names, start=1)}


def _store_outputs(
    store: ArtifactStore, prefix: str, version: VersionSplit, manifest: dict[str, object]
) -> StoredArtifact:
    for split in SPLIT_NAMES:
        ds = version.splits.get(split)
        if ds is not None and ds.images:
            store.put_bytes(f"{prefix}/{split}.json", _json_bytes(ds.to_coco()))
    return store.put_bytes(f"{prefix}/{SPLIT_MANIFEST_FILE}", _json_bytes(manifest))


def _json_bytes(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, check_circular=False).encode()
