"""UploadDatasetVersion: a zip or tar streamed in chunks, checked (size, sha256) and extracted safely."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from common.proto.raven.v1 import datasets_pb2 as pb
from services.training_run.adapters.dataset_snapshot import SnapshotLimits
from tests.integration.training_run.conftest import AppFactory, Harness
from tests.integration.training_run.datasets_support import (
    ALICE,
    BOB,
    CAROL_SEES_ALL,
    Datasets,
    dataset_root,
    readable,
    uri,
    violations,
    write_coco,
)

CHUNK = 64 * 1024


def zip_of(directory: Path, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(directory).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buffer.getvalue()


def tar_with_symlink(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        tf.add(directory, arcname=".")
        link = tarfile.TarInfo("img/evil.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    return buffer.getvalue()


async def _requests(
    parent: str, data: bytes, fmt: pb.ArchiveFormat = pb.ARCHIVE_FORMAT_ZIP, **meta: Any
) -> AsyncIterator[pb.UploadDatasetVersionRequest]:
    metadata = pb.UploadDatasetVersionMetadata(
        parent=meta.pop("other_parent", parent),
        size_bytes=meta.pop("size_bytes", len(data)),
        sha256=meta.pop("sha256", hashlib.sha256(data).hexdigest()),
        format=fmt,
        **meta,
    )
    yield pb.UploadDatasetVersionRequest(metadata=metadata)
    for start in range(0, len(data), CHUNK):
        yield pb.UploadDatasetVersionRequest(chunk=data[start : start + CHUNK])


async def upload(
    ds: Datasets, parent: str, data: bytes, metadata: Any = ALICE, **kw: Any
) -> pb.DatasetVersion:
    return await ds.stub.UploadDatasetVersion(_requests(parent, data, **kw), metadata=metadata, timeout=30)


async def test_an_upload_becomes_the_same_version_as_the_same_files_from_a_url(
    sqlite_harness: Harness,
) -> None:
    h, ds = sqlite_harness, Datasets.of(sqlite_harness)
    directory = write_coco(dataset_root(h) / "uploaded", images=40)  # several chunks
    dataset = await ds.create()
    data = zip_of(directory)
    uploaded = await upload(ds, dataset.name, data)
    assert uploaded.state == pb.DATASET_VERSION_STATE_PENDING and uploaded.file_count == 41
    assert uploaded.upload.sha256 == hashlib.sha256(data).hexdigest() and uploaded.upload.size_bytes == len(
        data
    )
    assert uploaded.upload.format == pb.ARCHIVE_FORMAT_ZIP and not uploaded.source_uri
    # Content-addressed by the extracted files: the same directory by URL is the same version.
    assert (await ds.version(dataset.name, uri(h, "uploaded"))).name == uploaded.name


async def test_damaged_or_hostile_uploads_are_refused_with_reasons(make_harness: AppFactory) -> None:
    h = await make_harness(
        snapshot_limits=SnapshotLimits(max_files=100, max_bytes=200_000, max_upload_bytes=150_000)
    )
    ds, root = Datasets.of(h), dataset_root(h)
    directory = write_coco(root / "hostile")
    dataset = await ds.create()
    good = zip_of(directory)
    cases: list[tuple[str, bytes, dict[str, Any], str]] = [
        ("wrong sha256", good, {"sha256": "0" * 64}, "metadata.sha256"),
        ("sha256 not hex", good, {"sha256": "xyz"}, "metadata.sha256"),
        ("fewer bytes", good, {"size_bytes": len(good) + 10}, "chunk"),
        ("more bytes", good, {"size_bytes": len(good) - 10}, "chunk"),
        ("over the upload limit", good, {"size_bytes": 10**9}, "metadata.size_bytes"),
        ("no format", good, {"fmt": pb.ARCHIVE_FORMAT_UNSPECIFIED}, "metadata.format"),
        ("malformed parent", good, {"other_parent": "datasets/"}, "metadata.parent"),
        (
            "bad split",
            good,
            {"dataset_version": pb.DatasetVersion(split_options=pb.SplitOptions(seed=-1))},
            "metadata.dataset_version.split_options.seed",
        ),
        ("not a zip", b"PK\x03\x04 garbage" * 10, {}, "archive"),
        ("path escape", zip_of(directory, {"../../escape.txt": b"x"}), {}, "archive"),
        ("absolute path", zip_of(directory, {"/etc/cron.d/x": b"x"}), {}, "archive"),
        ("symlink", tar_with_symlink(directory), {"fmt": pb.ARCHIVE_FORMAT_TAR}, "archive"),
        ("zip bomb", zip_of(directory, {"bomb.bin": b"\0" * 5_000_000}), {}, "archive"),
        ("no annotations", zip_of(directory / "img"), {}, "archive"),
    ]
    for what, data, meta, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await upload(ds, dataset.name, data, **meta)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        assert field in violations(refused.value), (what, violations(refused.value))
        readable(refused.value, root)
    assert not (root / "escape.txt").exists() and not (root.parent / "escape.txt").exists()
    listed = await ds.stub.ListDatasetVersions(
        pb.ListDatasetVersionsRequest(parent=dataset.name), metadata=ALICE
    )
    assert listed.total_size == 0  # nothing stored by a refused upload


async def test_upload_needs_metadata_first_and_an_owned_dataset(sqlite_harness: Harness) -> None:
    ds = Datasets.of(sqlite_harness)
    directory = write_coco(dataset_root(sqlite_harness) / "owned")
    dataset = await ds.create()

    async def chunk_first() -> AsyncIterator[pb.UploadDatasetVersionRequest]:
        yield pb.UploadDatasetVersionRequest(chunk=b"abc")

    with pytest.raises(grpc.aio.AioRpcError) as no_metadata:
        await ds.stub.UploadDatasetVersion(chunk_first(), metadata=ALICE, timeout=10)
    assert no_metadata.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata" in violations(no_metadata.value)
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await upload(ds, dataset.name, zip_of(directory), metadata=CAROL_SEES_ALL)
    assert foreign.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await upload(ds, dataset.name, zip_of(directory), metadata=BOB)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
