"""Pinning an unchanged dataset directory again reuses the sha256 of files whose (path, size, modification
stamp) it pinned before, and reads every file that changed. Real local filesystem and artifact store."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from common.artifacts import ArtifactStore
from services.training_run.adapters.dataset_snapshot import DatasetSnapshots, SnapshotLimits


def hashes(store: ArtifactStore, manifest_key: str) -> dict[str, str]:
    return {e["path"]: e["sha256"] for e in json.loads(store.read_bytes(manifest_key))}


def dataset(root: Path, age_seconds: float) -> Path:
    directory = root / "waste"
    (directory / "img").mkdir(parents=True)
    (directory / "annotations.json").write_text('{"images": [], "annotations": [], "categories": []}')
    for name in ("a", "b"):
        (directory / "img" / f"{name}.jpg").write_bytes(name.encode() * 100)
    past = time.time() - age_seconds
    for path in directory.rglob("*"):
        os.utime(path, (past, past))
    return directory


def rewrite(path: Path, data: bytes, mtime: float) -> None:
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


def test_unchanged_files_are_not_hashed_again_and_changed_ones_are(tmp_path: Path) -> None:
    directory = dataset(tmp_path / "root", age_seconds=60)
    store = ArtifactStore((tmp_path / "artifacts").as_uri())
    snapshots = DatasetSnapshots(store, (tmp_path / "root").as_uri(), SnapshotLimits())
    first = snapshots.from_reference("waste")
    a = directory / "img" / "a.jpg"
    stat = a.stat()

    # Same size and stamp, other bytes (what only a deliberate mtime reset does): the cached sha256 is used,
    # which shows the second pin did not read the file.
    rewrite(a, b"z" * 100, stat.st_mtime)
    assert snapshots.from_reference("waste").sha256 == first.sha256

    # A real change moves the modification time: read again, a new snapshot with a's new content.
    rewrite(a, b"y" * 100, stat.st_mtime + 5)
    changed = snapshots.from_reference("waste")
    assert changed.sha256 != first.sha256
    assert store.read_bytes(f"dataset_blobs/{hashes(store, changed.manifest_key)['img/a.jpg']}") == b"y" * 100

    # A lost blob is stored again from the file, not trusted from the cache.
    store.delete(f"dataset_blobs/{hashes(store, changed.manifest_key)['img/b.jpg']}")
    again = snapshots.from_reference("waste")
    assert again.sha256 == changed.sha256 and store.exists(
        f"dataset_blobs/{hashes(store, again.manifest_key)['img/b.jpg']}"
    )


def test_a_file_modified_just_before_it_was_read_is_never_cached(tmp_path: Path) -> None:
    directory = dataset(tmp_path / "root", age_seconds=0)  # racy: modified within RACY_SECONDS
    store = ArtifactStore((tmp_path / "artifacts").as_uri())
    snapshots = DatasetSnapshots(store, (tmp_path / "root").as_uri(), SnapshotLimits())
    first = snapshots.from_reference("waste")
    a = directory / "img" / "a.jpg"
    rewrite(a, b"z" * 100, a.stat().st_mtime)  # changed within the stamp's resolution: same size, same mtime
    second = snapshots.from_reference("waste")
    assert second.sha256 != first.sha256
    assert hashes(store, second.manifest_key)["img/a.jpg"] != hashes(store, first.manifest_key)["img/a.jpg"]
