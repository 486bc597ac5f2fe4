"""Safe extraction of an uploaded zip or tar archive into a scratch directory.

Every entry must be a regular file or a directory with a confined relative name (no absolute path, no '..',
no drive letter); links, devices and FIFOs are refused. Sizes are counted while the bytes are written, not
taken from the headers, so a zip bomb stops at the limit whatever its headers claim.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from common.artifacts import CHUNK
from common.dataset_layout import confined_relative_path

ZIP = "zip"
TAR = "tar"


class UnsafeArchive(Exception):
    """The archive cannot be extracted safely or is unreadable; the message says why, for the user."""


@dataclass
class _Budget:
    max_files: int
    max_bytes: int
    files: int = 0
    written: int = 0

    def add_file(self) -> None:
        self.files += 1
        if self.files > self.max_files:
            raise UnsafeArchive(f"holds more than {self.max_files} files (the server's limit)")

    def add_bytes(self, n: int) -> None:
        self.written += n
        if self.written > self.max_bytes:
            raise UnsafeArchive(f"extracts to more than {self.max_bytes} bytes (the server's limit)")


def extract(archive: Path, archive_format: str, target: Path, *, max_files: int, max_bytes: int) -> None:
    """Extract ``archive`` into the empty directory ``target``; UnsafeArchive on anything refused."""
    budget = _Budget(max_files, max_bytes)
    try:
        if archive_format == ZIP:
            _extract_zip(archive, target, budget)
        elif archive_format == TAR:
            _extract_tar(archive, target, budget)
        else:
            raise UnsafeArchive(f"unknown archive format {archive_format!r}")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        kind = "zip" if archive_format == ZIP else "tar"
        raise UnsafeArchive(f"is not a readable {kind} archive ({type(exc).__name__})") from None


def _target_path(target: Path, name: str) -> Path:
    try:
        relative = confined_relative_path(name)
    except ValueError as exc:
        raise UnsafeArchive(f"entry {name[:200]!r} {exc}") from None
    return target / relative


def _copy(src: IO[bytes], dest: Path, budget: _Budget) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        raise UnsafeArchive(f"entry {dest.name!r} appears twice")
    with open(dest, "wb") as out:
        while chunk := src.read(CHUNK):
            budget.add_bytes(len(chunk))
            out.write(chunk)


def _extract_zip(archive: Path, target: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix mode recorded (a plain file)
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise UnsafeArchive(f"entry {info.filename[:200]!r} is a link or special file")
            dest = _target_path(target, info.filename)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            budget.add_file()
            with zf.open(info) as src:
                _copy(src, dest, budget)


def _extract_tar(archive: Path, target: Path, budget: _Budget) -> None:
    with tarfile.open(archive, mode="r:*") as tf:
        for member in _members(tf):
            dest = _target_path(target, member.name)
            if member.isdir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            if not member.isreg():
                raise UnsafeArchive(f"entry {member.name[:200]!r} is a link or special file")
            budget.add_file()
            src = tf.extractfile(member)
            if src is None:
                raise UnsafeArchive(f"entry {member.name[:200]!r} is unreadable")
            with src:
                _copy(src, dest, budget)


def _members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (member := tf.next()) is not None:
        yield member


@contextmanager
def scratch_directory(parent: Path | None = None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="raven-upload-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
