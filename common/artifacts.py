"""Artifact store over fsspec (local directory in the embedded default, S3-compatible storage at scale).

Keys are relative POSIX paths confined to the store's root, with one strict charset shared by every API that
takes a key (artifact store, ImportTrainedModel, worker checkpoints, dataset references): each ``/``-separated
segment is ``[A-Za-z0-9._-]+`` and is neither ``.`` nor ``..``. So no absolute keys, schemes, backslashes,
quotes, spaces, parentheses or control characters reach storage, a file name or a config.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import fsspec

from common.errors import InvalidArgument, NotFound

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
MAX_KEY_CHARS = 1024
RUNS_PREFIX = "runs"  # runs/<run id>/...: a worker's uploads for one run
MODELS_PREFIX = "trained_models"  # trained_models/<model id>/...: files a model owns (imports)
# dataset_blobs/<sha256>: a dataset version's files, one copy per distinct content. training_run writes them
# (its snapshots) and names the prefix in every job; trained_model names it in evaluation jobs.
DATASET_BLOBS_PREFIX = "dataset_blobs"
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredArtifact:
    key: str
    size_bytes: int
    sha256: str


def normalize_key(key: str, what: str = "artifact key") -> str:
    """Return ``key`` when it is a confined relative key (see the module docstring), else InvalidArgument."""
    if not isinstance(key, str) or not key.strip():
        raise InvalidArgument(f"{what} is empty")
    if len(key) > MAX_KEY_CHARS:
        raise InvalidArgument(f"{what} is longer than {MAX_KEY_CHARS} characters")
    if key.startswith("/") or _SCHEME.match(key):
        raise InvalidArgument(f"{what} {key!r} must be a relative path (no leading '/' or URL scheme)")
    for segment in key.split("/"):
        if segment in (".", ".."):
            raise InvalidArgument(f"{what} {key!r} must not contain '.' or '..' segments")
        if not _SEGMENT.fullmatch(segment):
            raise InvalidArgument(
                f"{what} {key!r}: each '/'-separated part must be non-empty and use only letters, digits, "
                "'.', '_' and '-'"
            )
    return key


def owner_scope(key: str) -> tuple[str, str] | None:
    """``(prefix, id)`` when ``key`` lies under a run's or a model's own keys (``runs/<run id>/...``,
    ``trained_models/<model id>/...``), else None (keys such as ``imports/...`` belong to no one)."""
    parts = key.split("/")
    if len(parts) >= 2 and parts[0] in (RUNS_PREFIX, MODELS_PREFIX):
        return parts[0], parts[1]
    return None


class ArtifactStore:
    def __init__(self, root_url: str) -> None:
        self.root_url = root_url.rstrip("/")
        self.fs, self._root = fsspec.core.url_to_fs(self.root_url)
        self._root = self._root.rstrip("/")
        if self.fs.protocol in ("file", ("file", "local")) or "file" in self.fs.protocol:
            self.fs.makedirs(self._root, exist_ok=True)

    def _path(self, key: str) -> str:
        return f"{self._root}/{normalize_key(key)}"

    def local_path(self, key: str) -> Path | None:
        """The filesystem path of a key when the store is local, else None."""
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        return Path(self._path(key)) if "file" in protocols or "local" in protocols else None

    def put_file(self, key: str, local: Path) -> StoredArtifact:
        path = self._path(key)
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        tmp = f"{path}.{uuid.uuid4().hex}.partial"  # own name: concurrent writers of a key
        with open(local, "rb") as src, self.fs.open(tmp, "wb") as dst:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                dst.write(chunk)
        self.fs.mv(tmp, path)
        return StoredArtifact(key=normalize_key(key), size_bytes=size, sha256=digest.hexdigest())

    def put_bytes(self, key: str, data: bytes) -> StoredArtifact:
        path = self._path(key)
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.partial"  # own name: concurrent writers of a key
        with self.fs.open(tmp, "wb") as dst:
            dst.write(data)
        self.fs.mv(tmp, path)
        return StoredArtifact(
            key=normalize_key(key), size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
        )

    def get_file(self, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        with self.open(key) as src, open(local, "wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as src:
            return src.read()

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        if not self.fs.exists(path):
            raise NotFound(f"artifact {key!r} does not exist")
        return self.fs.open(path, "rb")  # type: ignore[no-any-return]

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def size(self, key: str) -> int:
        path = self._path(key)
        if not self.fs.exists(path):
            raise NotFound(f"artifact {key!r} does not exist")
        return int(self.fs.size(path))

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        with self.open(key) as src:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def iter_chunks(self, key: str, offset: int = 0, chunk_size: int = CHUNK) -> Iterator[tuple[int, bytes]]:
        with self.open(key) as src:
            src.seek(offset)
            position = offset
            while chunk := src.read(chunk_size):
                yield position, chunk
                position += len(chunk)

    def delete(self, key: str) -> None:
        path = self._path(key)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def list(self, prefix: str) -> list[str]:
        path = self._path(prefix)
        if not self.fs.exists(path):
            return []
        root = f"{self._root}/"
        return sorted(p[len(root) :] if p.startswith(root) else p for p in self.fs.find(path))
