"""Reads a COCO dataset from the dataset root (an fsspec URL) and writes the prepared split files.

Layout: ``<root>/<ref>/{train,val[,test]}.json`` or ``<root>/<ref>/annotations.json``, decided by
``common.dataset_layout.choose_layout`` (the rule Create applies too), with image ``file_name``s relative to
``<root>/<ref>/``. Everything read is confined to the root: refs and file names are checked lexically, and on
a local root symlinks are resolved and must stay inside it too (``common.dataset_refs.DatasetRoot``).

Images are read once each, on a thread pool: the bytes stream through sha256 (and, for a remote root, into the
work dir), then ``adapters/image_facts.py`` decodes them once to the end and checks their size as training
sees it (EXIF orientation applied).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from pycocotools.coco import COCO

from common.dataset_layout import SPLIT_NAMES, UNSPLIT, DatasetLayout, normalize_dataset_ref
from common.dataset_refs import DatasetRoot, find_layout
from common.errors import AppError, InvalidArgument
from services.trainer_worker.adapters.image_facts import FileFacts, inspect_image, report_image
from services.trainer_worker.domain.coco import CocoDataset, parse_coco
from services.trainer_worker.domain.dataset import PreparedDataset, select_classes
from services.trainer_worker.domain.problems import DatasetInvalid, Problem, ProblemLog
from services.trainer_worker.domain.split import (
    SplitFractions,
    check_given_split,
    split_manifest,
    stratified_split,
)
from services.trainer_worker.domain.version_split import split_seed

MANIFEST_FILE = "split_manifest.json"
CHUNK_BYTES = 1 << 20
IO_THREADS = min(32, 4 * (os.cpu_count() or 1))
IO_BATCH = 32  # files per pool task: a future per file costs more than reading a small image
DEFAULT_FRACTIONS = SplitFractions()
_UNREADABLE = object()  # stands for an annotation file that is not JSON


def resolve_dataset_ref(dataset_root_url: str, ref: str) -> str:
    """Normalized ``ref`` when it names a dataset directory under the root; DatasetInvalid otherwise."""
    return _layout(DatasetRoot.open(dataset_root_url), _confined_ref(ref)).ref


def prepare_dataset(
    dataset_root_url: str,
    dataset_ref: str,
    work_dir: Path,
    *,
    seed: int,
    fractions: SplitFractions = DEFAULT_FRACTIONS,
    class_names: Sequence[str] | None = None,
) -> PreparedDataset:
    """Validate, hash, split and write dataset ``dataset_ref`` as mmdet-ready COCO files under ``work_dir``.

    A plain dataset reference has no frozen split: it is computed here, seeded by its image files (names
    and sha256, ``image_files_sha256``), never by the run's ``seed`` (recorded in the manifest as
    ``run_seed``), so runs of the same images with different seeds get the same split, and so does a fixed
    annotation or a reordered listing. A dataset version's frozen split is ``adapters/version_dataset.py``.

    Raises:
        DatasetInvalid: with every problem found (first items in ``details``).
    """
    clock = _StageClock()
    root = DatasetRoot.open(dataset_root_url)
    ref = _confined_ref(dataset_ref)
    layout = _layout(root, ref).files
    subject = f"dataset {ref!r}"
    problems = ProblemLog()
    with clock("load"):
        docs = {name: _load_json(root, ref, name, problems) for name in layout.values()}
    with clock("validate"):
        parsed = {
            split: parse_coco(docs[name], name, problems) if docs[name] is not _UNREADABLE else None
            for split, name in layout.items()
        }
        datasets = {split: ds for split, ds in parsed.items() if ds is not None}
        if len(datasets) < len(parsed):
            problems.raise_if_any(subject)  # a file's structure is unusable: nothing further can be checked
        names, selected = select_classes(datasets, class_names, problems)
        given_split = UNSPLIT not in layout
        if given_split:
            check_given_split(selected, problems)
    work_dir.mkdir(parents=True, exist_ok=True)
    local = root.real is not None
    image_root = Path(root.join(ref)) if local else work_dir / "images"
    with clock("images"):
        hashes = _check_images(root, ref, selected, None if local else image_root, problems)
    problems.raise_if_any(subject)
    with clock("hash"):
        snapshot = snapshot_sha256(docs, hashes)
    images_sha256 = image_files_sha256(hashes)
    split_by = split_seed(images_sha256)
    with clock("split"):
        if given_split:
            splits = selected
        else:
            assignment = stratified_split(selected[UNSPLIT], fractions, split_by).as_dict()
            splits = {s: selected[UNSPLIT].subset(ids) for s, ids in assignment.items()}
    with clock("write"):
        paths = write_splits(splits, work_dir)
        manifest = split_manifest(
            splits,
            seed=split_by,
            fractions=fractions,
            given=given_split,
            class_names=names,
            snapshot_sha256=snapshot,
        )
        manifest.update(
            dataset_ref=ref, seed_source="image_files_sha256", image_files_sha256=images_sha256, run_seed=seed
        )
        train_images = splits["train"].images if "train" in splits else ()
        manifest["train_sha256"] = sorted(
            {hashes[i.file_name] for i in train_images if i.file_name in hashes}
        )
        manifest_path = write_json(work_dir / MANIFEST_FILE, manifest)
    counts = {s: len(splits[s].images) if s in splits else 0 for s in SPLIT_NAMES}
    counts["images"] = sum(counts.values())
    counts["annotations"] = sum(len(ds.annotations) for ds in splits.values())
    return PreparedDataset(
        image_root=image_root,
        train_ann=paths["train"],
        val_ann=paths["val"],
        test_ann=paths.get("test"),
        class_names=names,
        snapshot_sha256=snapshot,
        manifest_path=manifest_path,
        counts=counts,
        stage_seconds=clock.seconds,
    )


def snapshot_sha256(docs: Mapping[str, object], image_hashes: Mapping[str, str]) -> str:
    """Content hash over the canonical JSON of each annotation file and each image's bytes, sorted by name."""
    total = hashlib.sha256(b"raven-dataset-snapshot-v1\n")
    for name in sorted(docs):
        canonical = json.dumps(docs[name], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        total.update(f"A {name}\0{hashlib.sha256(canonical.encode()).hexdigest()}\n".encode())
    for file_name in sorted(image_hashes):
        total.update(f"I {file_name}\0{image_hashes[file_name]}\n".encode())
    return total.hexdigest()


def image_files_sha256(image_hashes: Mapping[str, str]) -> str:
    """Identity of a dataset's image files (names and contents, order-free): what seeds a plain reference's
    split, so neither the run's seed nor an annotation fix moves it."""
    total = hashlib.sha256(b"raven-image-files-v1\n")
    for file_name in sorted(image_hashes):
        total.update(f"{file_name}\0{image_hashes[file_name]}\n".encode())
    return total.hexdigest()


def _confined_ref(ref: str) -> str:
    """The same rule as at Create (the artifact key charset): the ref comes from the job, check it again."""
    try:
        return normalize_dataset_ref(ref)
    except InvalidArgument as exc:
        raise DatasetInvalid(exc.message, [], [Problem.FILE_NAME_ESCAPES]) from None


def _layout(root: DatasetRoot, ref: str) -> DatasetLayout:
    """The dataset's annotation files, by the rule Create applied too."""
    try:
        return find_layout(root, ref)
    except AppError as exc:
        raise DatasetInvalid(exc.message, []) from None


def _load_json(root: DatasetRoot, ref: str, name: str, problems: ProblemLog) -> object:
    try:
        return json.loads(root.fs.cat_file(root.join(ref, name)))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.add(Problem.NOT_JSON, f"{name}: not valid JSON ({exc})")
        return _UNREADABLE


def _check_images(
    root: DatasetRoot, ref: str, splits: Mapping[str, CocoDataset], copy_to: Path | None, problems: ProblemLog
) -> dict[str, str]:
    """Read each referenced file once (thread pool), report bad ones; return file_name -> sha256."""
    records = [(split, image) for split, ds in splits.items() for image in ds.images]
    file_names = sorted({image.file_name for _, image in records})
    batches = [file_names[i : i + IO_BATCH] for i in range(0, len(file_names), IO_BATCH)]
    with ThreadPoolExecutor(IO_THREADS, thread_name_prefix="dataset-io") as pool:
        results = pool.map(lambda batch: [_read_image(root, ref, f, copy_to) for f in batch], batches)
        facts = dict(zip(file_names, (f for batch in results for f in batch), strict=True))
    prefix = len(splits) > 1
    for split, image in sorted(records, key=lambda r: (r[1].id, r[0])):
        report_image(image, facts[image.file_name], f"{split}.json: " if prefix else "", problems)
    return {name: f.sha256 for name, f in facts.items() if f.sha256}


def _read_image(root: DatasetRoot, ref: str, file_name: str, copy_to: Path | None) -> FileFacts:
    """Read the file once: its bytes stream through sha256 (and the copy), then decode once in full."""
    path = root.join(ref, file_name)
    if not root.contains(path):
        return FileFacts(error="is not a readable image (it resolves outside the dataset root (symlink))")
    digest = hashlib.sha256()
    data = bytearray()
    try:
        with root.fs.open(path, "rb") as src, _copy_target(copy_to, file_name) as dst:
            for chunk in _chunks(src, src.read(CHUNK_BYTES)):
                digest.update(chunk)
                data += chunk
                if dst is not None:
                    dst.write(chunk)
    except FileNotFoundError:
        return FileFacts(missing=True)
    except OSError as exc:
        return FileFacts(error=f"is not readable ({exc.strerror or type(exc).__name__})")
    return FileFacts(sha256=digest.hexdigest(), image=inspect_image(bytes(data), perceptual_hash=False))


def _chunks(src: IO[bytes], head: bytes) -> Iterator[bytes]:
    chunk = head
    while chunk:
        yield chunk
        chunk = src.read(CHUNK_BYTES)


@contextlib.contextmanager
def _copy_target(copy_to: Path | None, file_name: str) -> Iterator[IO[bytes] | None]:
    if copy_to is None:
        yield None
        return
    target = copy_to / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as dst:
        yield dst


def write_splits(splits: Mapping[str, CocoDataset], work_dir: Path) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for split in SPLIT_NAMES:
        ds = splits.get(split)
        if ds is None or not ds.images:
            (work_dir / f"{split}.json").unlink(missing_ok=True)
            continue
        coco_dict = ds.to_coco()
        _check_loads_in_pycocotools(coco_dict, split)
        paths[split] = write_json(work_dir / f"{split}.json", coco_dict)
    return paths


def _check_loads_in_pycocotools(coco_dict: dict[str, Any], split: str) -> None:
    """Index the split with pycocotools, as mmdet's CocoDataset does, so a bad file never reaches training."""
    coco = COCO()
    coco.dataset = coco_dict
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress
        coco.createIndex()
    names = [c["name"] for c in coco.loadCats(coco.getCatIds())]
    if len(coco.getImgIds()) != len(coco_dict["images"]) or names != [
        c["name"] for c in coco_dict["categories"]
    ]:
        raise RuntimeError(f"prepared {split} split does not index consistently in pycocotools")


def write_json(path: Path, payload: object) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    # json.dumps, unlike json.dump, runs the C encoder (about 10x faster on 100k annotations)
    tmp.write_text(
        json.dumps(payload, separators=(",", ":"), ensure_ascii=False, check_circular=False), encoding="utf-8"
    )
    os.replace(tmp, path)
    return path.resolve()


class _StageClock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
