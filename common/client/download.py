"""Resumable, verified artifact download over the DownloadModelArtifact stream."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from common.client.errors import IntegrityError, RavenError
from common.client.retry import READ_RETRY_CODES, Failures, RetryPolicy
from common.proto.raven.v1 import types_pb2

STALE_OFFSET_CODES = frozenset({grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.INVALID_ARGUMENT})


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    sha256: str
    filename: str
    resumed_from: int  # bytes already on disk when this download started


@dataclass
class _Announced:
    sha256: str = ""
    total_size: int = -1
    filename: str = ""

    def merge(self, sha256: str, total_size: int, filename: str) -> None:
        """Take what a stream's first message announces; an artifact changed between streams is an error."""
        if sha256:
            if self.sha256 and sha256 != self.sha256:
                raise IntegrityError(f"the artifact changed during the download ({self.sha256} → {sha256})")
            self.sha256 = sha256
        if total_size:
            self.total_size = total_size
        self.filename = filename or self.filename


def _paths(model: str, kind: types_pb2.ArtifactKind | str, dest: Path) -> tuple[Path, Path | None]:
    """(partial file, final file or None when the server's filename decides it)."""
    if dest.is_dir():
        model_id = model.rsplit("/", 1)[-1]
        kind_name = kind if isinstance(kind, str) else types_pb2.ArtifactKind.Name(kind)
        return dest / f".{model_id}.{kind_name.lower()}.part", None
    return dest.with_name(dest.name + ".part"), dest


def _safe_filename(filename: str, fallback: str) -> str:
    # The server names the file; never let that name leave the destination directory.
    name = Path(filename.replace("\\", "/")).name
    return name if name not in ("", ".", "..") else fallback


async def download_artifact(
    open_stream: Callable[[int], Any],
    model: str,
    kind: types_pb2.ArtifactKind | str,
    dest: Path,
    *,
    resume: bool,
    retry: RetryPolicy,
) -> DownloadResult:
    part, final = _paths(model, kind, dest)
    part.parent.mkdir(parents=True, exist_ok=True)
    if not resume:
        part.unlink(missing_ok=True)
    hasher = hashlib.sha256()
    offset = 0
    if part.exists():
        with part.open("rb") as existing:
            for block in iter(lambda: existing.read(1 << 20), b""):
                hasher.update(block)
                offset += len(block)
    resumed_from = offset
    announced = _Announced()
    failures = Failures(retry)
    with part.open("ab") as out:
        while announced.total_size < 0 or offset < announced.total_size:
            call = open_stream(offset)
            first = True
            try:
                async for chunk in call:
                    if first:
                        announced.merge(chunk.sha256, chunk.total_size, chunk.filename)
                        first = False
                    if chunk.offset != offset:
                        raise IntegrityError(f"chunk at offset {chunk.offset}, expected {offset}")
                    out.write(chunk.data)
                    hasher.update(chunk.data)
                    offset += len(chunk.data)
                    failures.reset()
                if announced.total_size < 0:
                    announced.total_size = offset  # the server announced no size: the clean end is the end
            except grpc.aio.AioRpcError as exc:
                if exc.code() in STALE_OFFSET_CODES and offset and offset == resumed_from:
                    # The server refused the offset of the partial file found on disk: it belongs to another
                    # artifact (or version), so start over.
                    out.truncate(0)
                    hasher, offset, resumed_from = hashlib.sha256(), 0, 0
                    continue
                if exc.code() not in READ_RETRY_CODES:
                    raise RavenError.from_rpc_error(exc) from exc
                if not await failures.failed():
                    raise RavenError.from_rpc_error(exc) from exc
            finally:
                call.cancel()
            out.flush()
    _verify(part, announced, offset, hasher.hexdigest())
    target = final or part.parent / _safe_filename(announced.filename, f"{model.rsplit('/', 1)[-1]}.bin")
    part.replace(target)
    return DownloadResult(
        path=target,
        size=offset,
        sha256=announced.sha256,
        filename=announced.filename,
        resumed_from=resumed_from,
    )


def _verify(part: Path, announced: _Announced, size: int, digest: str) -> None:
    problem = ""
    if size != announced.total_size:
        problem = f"got {size} bytes, the server announced {announced.total_size}"
    elif not announced.sha256:
        problem = "the server announced no sha256, the download cannot be verified"
    elif digest != announced.sha256:
        problem = f"sha256 mismatch: got {digest}, expected {announced.sha256}"
    if problem:
        part.unlink(missing_ok=True)
        raise IntegrityError(problem)
