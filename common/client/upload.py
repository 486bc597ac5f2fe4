"""Archives for UploadDatasetVersion: a zip or tar sent as it is, or a directory archived first.

The upload's first message announces the archive's size and sha256, so both are known before the first chunk:
a directory is written to a tar in a scratch directory (files only, sorted, links followed), then streamed.
"""

from __future__ import annotations

import asyncio
import hashlib
import tarfile
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from common.client.errors import RavenError
from common.proto.raven.v1 import datasets_pb2 as pb

CHUNK_SIZE = 1 << 20  # the server takes at most 1 MiB per message
READ_BLOCK = 1 << 20

Progress = Callable[[int, int], None]  # (bytes sent, archive size)


@dataclass(frozen=True)
class Archive:
    path: Path
    format: pb.ArchiveFormat
    size: int
    sha256: str
    from_directory: bool


def archive_format(path: Path) -> pb.ArchiveFormat:
    """ZIP or TAR (plain, gzip, bzip2, xz) by content, whatever the file is called."""
    if zipfile.is_zipfile(path):
        return pb.ARCHIVE_FORMAT_ZIP
    if tarfile.is_tarfile(path):
        return pb.ARCHIVE_FORMAT_TAR
    raise RavenError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{path.name} is neither a zip nor a tar archive: upload one, or a directory of a COCO dataset",
    )


def archive_directory(directory: Path, out: Path) -> Path:
    """Every file under ``directory`` (links followed, sorted) into a plain tar, named relative to it."""
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    if not files:
        raise RavenError(grpc.StatusCode.INVALID_ARGUMENT, f"{directory.name} holds no files to upload")
    with tarfile.open(out, "w", dereference=True) as tf:
        for path in files:
            tf.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)
    return out


def file_sha256(path: Path) -> tuple[int, str]:
    hasher, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(READ_BLOCK), b""):
            hasher.update(block)
            size += len(block)
    return size, hasher.hexdigest()


def prepare_archive(path: Path, scratch: Path) -> Archive:
    """The archive to send for ``path`` (blocking: run it in a thread). A directory is archived into
    ``scratch``; a file must be a zip or tar."""
    from_directory = path.is_dir()
    if from_directory:
        archive, fmt = archive_directory(path, scratch / "dataset.tar"), pb.ARCHIVE_FORMAT_TAR
    else:
        archive, fmt = path, archive_format(path)
    size, digest = file_sha256(archive)
    if size == 0:
        raise RavenError(grpc.StatusCode.INVALID_ARGUMENT, f"{path.name} is empty")
    return Archive(archive, fmt, size, digest, from_directory)


async def upload_requests(
    metadata: pb.UploadDatasetVersionMetadata,
    archive: Archive,
    chunk_size: int = CHUNK_SIZE,
    on_progress: Progress | None = None,
) -> AsyncIterator[pb.UploadDatasetVersionRequest]:
    """The metadata message, then the archive in chunks of at most ``chunk_size`` bytes."""
    yield pb.UploadDatasetVersionRequest(metadata=metadata)
    sent = 0
    with archive.path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, min(chunk_size, CHUNK_SIZE)):
            yield pb.UploadDatasetVersionRequest(chunk=chunk)
            sent += len(chunk)
            if on_progress is not None:
                on_progress(sent, archive.size)
