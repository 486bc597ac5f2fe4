"""Receiving an uploaded archive: the first message's metadata checked, the chunks written to a scratch
file with the size and sha256 checked as they arrive, then extracted safely (``adapters.archives``)."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from common.auth import Permission, Principal
from common.errors import FieldViolation, InvalidArgument, require
from services.training_run.adapters import archives
from services.training_run.adapters.dataset_snapshot import DatasetSnapshots
from services.training_run.domain.datasets import DatasetVersion, Snapshot
from services.training_run.service_layer.datasets import DatasetService, NewVersion

SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_CHUNK = 1024 * 1024
F = "metadata."


@dataclass(frozen=True)
class UploadMetadata:
    parent: str
    size_bytes: int
    sha256: str
    archive_format: str  # "zip" | "tar" | "" (unknown)


def check_metadata(meta: UploadMetadata, max_upload_bytes: int) -> None:
    violations = []
    if meta.size_bytes <= 0:
        violations.append(FieldViolation(F + "size_bytes", "must be the archive's size in bytes (> 0)"))
    elif meta.size_bytes > max_upload_bytes:
        violations.append(
            FieldViolation(F + "size_bytes", f"is over the server's upload limit of {max_upload_bytes} bytes")
        )
    if not SHA256.match(meta.sha256.lower()):
        violations.append(FieldViolation(F + "sha256", "must be the archive's sha256 as 64 hex digits"))
    if not meta.archive_format:
        violations.append(FieldViolation(F + "format", "must be ARCHIVE_FORMAT_ZIP or ARCHIVE_FORMAT_TAR"))
    require(violations, "the upload's metadata is invalid")


async def receive(chunks: AsyncIterator[bytes], meta: UploadMetadata, target: Path) -> None:
    """Write the chunks to ``target``; InvalidArgument when their size or sha256 differ from ``meta``."""
    digest, received = hashlib.sha256(), 0
    out = await asyncio.to_thread(open, target, "wb")
    try:
        async for chunk in chunks:
            if len(chunk) > MAX_CHUNK:
                raise _chunk_error(f"a chunk of {len(chunk)} bytes is over the 1 MiB limit per message")
            received += len(chunk)
            if received > meta.size_bytes:
                raise _chunk_error(f"more bytes arrived than metadata.size_bytes ({meta.size_bytes})")
            digest.update(chunk)
            await asyncio.to_thread(out.write, chunk)
    finally:
        out.close()
    if received != meta.size_bytes:
        raise _chunk_error(f"the upload ended after {received} of {meta.size_bytes} bytes: send it again")
    if digest.hexdigest() != meta.sha256.lower():
        raise InvalidArgument(
            "the archive's sha256 differs from metadata.sha256: it was damaged on the way, send it again",
            [FieldViolation(F + "sha256", "is not the sha256 of the bytes received")],
        )


def _chunk_error(description: str) -> InvalidArgument:
    return InvalidArgument(description, [FieldViolation("chunk", description)])


async def upload_version(
    service: DatasetService,
    snapshots: DatasetSnapshots,
    principal: Principal,
    meta: UploadMetadata,
    new: NewVersion,
    chunks: AsyncIterator[bytes],
) -> DatasetVersion:
    """Receive, check and extract the archive, then create the version from its files."""
    principal.require(Permission.CREATE_DATASETS)
    check_metadata(meta, snapshots.limits.max_upload_bytes)
    # NOT_FOUND / PERMISSION_DENIED before any byte is stored
    await service.check_owned(principal, new.parent, F + "parent")
    with archives.scratch_directory() as scratch:
        archive = scratch / "upload.bin"
        await receive(chunks, meta, archive)
        extracted = scratch / "files"
        extracted.mkdir()

        def pin() -> Snapshot:
            try:
                archives.extract(
                    archive, meta.archive_format, extracted,
                    max_files=snapshots.limits.max_files, max_bytes=snapshots.limits.max_bytes,
                )  # fmt: skip
            except archives.UnsafeArchive as exc:
                raise InvalidArgument(f"archive {exc}", [FieldViolation("archive", str(exc))]) from None
            return snapshots.from_directory(extracted, "archive")

        return await service.create_version(principal, new, pin)
