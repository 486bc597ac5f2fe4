"""Pinning a dataset's files: hash every file, store it content-addressed, write the per-file manifest.

A version's files live in the artifact store under ``dataset_blobs/{sha256}`` (one copy per distinct content,
whatever its name), listed by a JSON manifest ``[{"path", "size", "sha256"}]`` sorted by path, stored under
``dataset_manifests/{snapshot sha256}.json``. The snapshot sha256 (the version's identity) is the sha256 of
the manifest's lines ``path\\0sha256\\0size\\n``: the same files under the same paths give the same identity,
wherever they came from.

Sources: a directory under the configured dataset root (an fsspec URL; symbolic links may not lead out of
it), or an uploaded archive extracted by :mod:`archives` into a scratch directory. Blocking: call in a thread.

Every CreateTrainingRun on a plain dataset reference pins its directory again, mostly unchanged. A file under
the dataset root whose (path, size, modification stamp) was pinned before and whose blob is stored is not read
again (:class:`HashCache`, the quick check of git's index and rsync); a file modified less than
``RACY_SECONDS`` before it was read is never cached (it may change again within the stamp's resolution).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from common.artifacts import CHUNK, DATASET_BLOBS_PREFIX, ArtifactStore
from common.dataset_layout import CANDIDATE_FILES, LAYOUT_HINT, choose_layout, confined_relative_path
from common.dataset_refs import DatasetRoot
from common.errors import FieldViolation, InvalidArgument
from services.training_run.domain.datasets import Snapshot

MANIFEST_PREFIX = "dataset_manifests"
RACY_SECONDS = 2.0


@dataclass(frozen=True)
class SnapshotLimits:
    max_files: int = 200_000
    max_bytes: int = 50 * 1024**3  # of a version's files (also of an archive once extracted)
    max_upload_bytes: int = 10 * 1024**3  # of an uploaded archive as sent


@dataclass(frozen=True)
class _File:
    path: str  # relative, "/"-separated
    source: str  # as the filesystem spells it
    size: int
    stamp: Hashable = None  # what says the content is unchanged besides the size; None: nothing (no cache)
    mtime: float | None = None  # seconds since the epoch, when the filesystem says


def _stamp(info: dict[str, object]) -> tuple[Hashable, float | None]:
    """The modification stamp of a file's fsspec info: local (mtime, inode), else an object store's ETag or
    last-modified time; (None, None) when the filesystem says none."""
    mtime = info.get("mtime")
    if isinstance(mtime, int | float):
        return (float(mtime), info.get("ino")), float(mtime)
    for key in ("ETag", "etag", "LastModified", "last_modified"):
        value = info.get(key)
        if value is not None:
            return str(value), None
    return None, None


class HashCache:
    """The sha256 of files pinned before, by (source, size, stamp); bounded, least recently used dropped."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._entries: OrderedDict[tuple[str, int, Hashable], str] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()  # pins run in threads

    def get(self, file: _File) -> str | None:
        if file.stamp is None:
            return None
        with self._lock:
            found = self._entries.get((file.source, file.size, file.stamp))
            if found is not None:
                self._entries.move_to_end((file.source, file.size, file.stamp))
            return found

    def put(self, file: _File, sha256: str, size: int, read_at: float) -> None:
        racy = file.mtime is not None and read_at - file.mtime < RACY_SECONDS
        if file.stamp is None or size != file.size or racy:
            return
        with self._lock:
            self._entries[(file.source, file.size, file.stamp)] = sha256
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


def invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {description}", [FieldViolation(field, description)])


class DatasetSnapshots:
    def __init__(
        self,
        store: ArtifactStore,
        dataset_root_url: str,
        limits: SnapshotLimits,
        hashes: HashCache | None = None,
    ) -> None:
        self.store = store
        self.root = DatasetRoot.open(dataset_root_url)
        self.root_url = dataset_root_url.rstrip("/")
        self.limits = limits
        self.hashes = hashes if hashes is not None else HashCache()

    def from_uri(self, uri: str, field: str = "dataset_version.source_uri") -> Snapshot:
        """Pin the dataset directory ``uri`` (under the dataset root)."""
        directory = self._confined_directory(uri, field)
        files = list(self._walk(self.root.fs, directory, field))
        return self._pin(self.root.fs, files, field, self.hashes)

    def from_reference(self, reference: str, field: str = "training_run.dataset") -> Snapshot:
        """Pin the directory of a plain dataset reference (relative to the dataset root, already checked)."""
        return self.from_uri(f"{self.root_url}/{reference.strip('/')}", field)

    def from_directory(self, directory: Path, field: str) -> Snapshot:
        """Pin a local scratch directory (an extracted upload)."""
        fs = LocalFileSystem()
        return self._pin(fs, list(self._walk(fs, str(directory), field)), field)

    # ---- steps -------------------------------------------------------------------------------------------
    def _confined_directory(self, uri: str, field: str) -> str:
        if not uri:
            raise invalid(
                field, "is required: an fsspec URL of a COCO dataset directory under the dataset root"
            )
        if len(uri) > 2000:
            raise invalid(field, "is longer than 2000 characters")
        if not uri.rstrip("/").startswith(self.root_url + "/"):
            raise invalid(
                field,
                "must start with the server's dataset root URL (RAVEN_DATASET_ROOT) and name a "
                "directory below it",
            )
        relative = uri.rstrip("/")[len(self.root_url) + 1 :]
        try:
            relative = confined_relative_path(relative)
        except ValueError as exc:
            raise invalid(field, f"the path below the dataset root {exc}") from None
        directory = self.root.join(relative)
        if not self.root.contains(directory):
            raise invalid(field, "leads out of the dataset root through a symbolic link")
        if not self.root.fs.isdir(directory):
            raise invalid(field, f"no dataset directory {relative!r} under the dataset root")
        return directory

    def _walk(self, fs: fsspec.AbstractFileSystem, directory: str, field: str) -> Iterator[_File]:
        base = directory.rstrip("/") + "/"
        total = count = 0
        for path, info in sorted(fs.find(directory, detail=True).items()):
            relative = path[len(base) :] if path.startswith(base) else path
            if info.get("islink") or (isinstance(fs, LocalFileSystem) and os.path.islink(path)):
                if not self.root.contains(path):
                    raise invalid(field, f"{relative!r} is a symbolic link leading out of the dataset root")
            count += 1
            total += int(info.get("size") or 0)
            if count > self.limits.max_files:
                raise invalid(field, f"holds more than {self.limits.max_files} files (the server's limit)")
            if total > self.limits.max_bytes:
                raise invalid(field, f"holds more than {self.limits.max_bytes} bytes (the server's limit)")
            yield _File(relative, path, int(info.get("size") or 0), *_stamp(info))

    def _pin(
        self, fs: fsspec.AbstractFileSystem, files: list[_File], field: str, hashes: HashCache | None = None
    ) -> Snapshot:
        """``hashes``: for files under the dataset root only (an extracted upload's scratch paths and
        modification times may repeat with other contents)."""
        present = {f.path for f in files if f.path in CANDIDATE_FILES}
        try:
            layout = choose_layout("the dataset", present)
        except InvalidArgument as exc:
            raise invalid(field, f"{exc.message} ({LAYOUT_HINT})") from None
        entries = [self._store_blob(fs, f, hashes) for f in files]
        lines = "".join(f"{e['path']}\0{e['sha256']}\0{e['size']}\n" for e in entries)
        snapshot_sha256 = hashlib.sha256(lines.encode()).hexdigest()
        manifest = json.dumps(entries, separators=(",", ":")).encode()
        stored = self.store.put_bytes(f"{MANIFEST_PREFIX}/{snapshot_sha256}.json", manifest)
        return Snapshot(
            sha256=snapshot_sha256, manifest_key=stored.key, manifest_sha256=stored.sha256,
            manifest_size=stored.size_bytes, file_count=len(entries),
            size_bytes=sum(int(e["size"]) for e in entries), annotation_files=dict(layout.files),
        )  # fmt: skip

    def _store_blob(
        self, fs: fsspec.AbstractFileSystem, file: _File, hashes: HashCache | None
    ) -> dict[str, str | int]:
        """Hash the file while copying it to a scratch file, then store it under its sha256 (once); a file
        ``hashes`` knows unchanged, whose blob is stored, is not read."""
        known = hashes.get(file) if hashes is not None else None
        if known is not None and self.store.exists(f"{DATASET_BLOBS_PREFIX}/{known}"):
            return {"path": file.path, "size": file.size, "sha256": known}
        read_at = time.time()
        with tempfile.NamedTemporaryFile(prefix="raven-blob-") as scratch:
            digest, size = hashlib.sha256(), 0
            with fs.open(file.source, "rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    scratch.write(chunk)
            scratch.flush()
            sha256 = digest.hexdigest()
            key = f"{DATASET_BLOBS_PREFIX}/{sha256}"
            if not self.store.exists(key):
                self.store.put_file(key, Path(scratch.name))
        if hashes is not None:
            hashes.put(file, sha256, size, read_at)
        return {"path": file.path, "size": size, "sha256": sha256}
