"""The DatasetVersion state machine and the safe archive extraction, alone."""

from __future__ import annotations

import io
import tarfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.errors import FailedPrecondition
from common.failures import Failure, FailureKind
from services.training_run.adapters import archives
from services.training_run.domain.datasets import (
    Dataset,
    DatasetVersion,
    PreparationRequested,
    PreparationResult,
    Snapshot,
    VersionState,
    VersionStateChanged,
)

NOW = datetime(2026, 12, 3, tzinfo=UTC)
SNAPSHOT = Snapshot("a" * 64, "dataset_manifests/a.json", "b" * 64, 10, 2, 100, {"all": "annotations.json"})
OPTIONS: dict[str, float | int] = {"train_fraction": 0.7, "val_fraction": 0.2, "seed": 0}


def new_version(dataset: Dataset | None = None) -> DatasetVersion:
    dataset = dataset or Dataset("d1", "alice", "flights", NOW)
    return DatasetVersion.create(
        id="v1", dataset=dataset, owner="alice", snapshot=SNAPSHOT, now=NOW, split_options=dict(OPTIONS)
    )


def test_created_pending_with_a_job_and_numbers_never_reused() -> None:
    dataset = Dataset("d1", "alice", "flights", NOW)
    first, second = new_version(dataset), new_version(dataset)
    assert (first.number, second.number, dataset.next_version) == (1, 2, 3)
    assert first.state == VersionState.PENDING and first.name == "datasets/d1/versions/1"
    assert [type(e) for e in first.events] == [VersionStateChanged, PreparationRequested]


def test_start_progress_result_in_order_and_once() -> None:
    version = new_version()
    assert version.start(NOW) and not version.start(NOW)
    assert version.report_progress(b"p2", 5, NOW) and not version.report_progress(b"p1", 4, NOW)
    assert version.progress == b"p2"
    assert version.complete(PreparationResult(0, b"ok"), NOW) and version.state == VersionState.READY
    assert not version.complete(PreparationResult(3, b"late"), NOW) and version.result == PreparationResult(
        0, b"ok"
    )
    assert not version.start(NOW) and not version.report_progress(b"p3", 9, NOW)
    assert version.ready_time == NOW


def test_problems_or_a_failure_make_it_invalid() -> None:
    broken = new_version()
    broken.complete(PreparationResult(2, b""), NOW)
    assert broken.state == VersionState.INVALID and "2 problem" in broken.transitions[-1][2]
    failed = new_version()
    failed.fail(Failure(FailureKind.ARTIFACT_MISMATCH, "img/a.jpg changed"), NOW)
    assert failed.state == VersionState.INVALID and not failed.reusable_for(OPTIONS)
    assert broken.reusable_for(OPTIONS) and not broken.reusable_for({**OPTIONS, "seed": 1})


def test_a_version_in_use_is_not_deletable() -> None:
    version = new_version()
    version.ensure_deletable([])
    with pytest.raises(FailedPrecondition, match="trainingRuns/r1 and 1 more"):
        version.ensure_deletable(["trainingRuns/r1", "trainingRuns/r2"])


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ({"../x": b"1"}, "'..'"),
        ({"/abs": b"1"}, "relative"),
        ({"a/b.txt": b"1", "big.bin": b"\0" * 10_000}, "more than 5000 bytes"),
        ({f"f{i}": b"1" for i in range(6)}, "more than 5 files"),
    ],
)
def test_zip_entries_that_escape_or_overflow_are_refused(
    tmp_path: Path, entries: dict[str, bytes], reason: str
) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip(entries))
    (tmp_path / "out").mkdir()
    with pytest.raises(archives.UnsafeArchive, match=reason):
        archives.extract(archive, archives.ZIP, tmp_path / "out", max_files=5, max_bytes=5000)
    assert not (tmp_path / "x").exists()


def test_tar_links_are_refused_and_regular_files_extracted(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        data = b"hello"
        info = tarfile.TarInfo("dir/ok.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (tmp_path / "ok.tar").write_bytes(buffer.getvalue())
    archives.extract(tmp_path / "ok.tar", archives.TAR, tmp_path, max_files=5, max_bytes=100)
    assert (tmp_path / "dir" / "ok.txt").read_bytes() == b"hello"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        link = tarfile.TarInfo("dir/link")
        link.type, link.linkname = tarfile.LNKTYPE, "dir/ok.txt"
        tf.addfile(link)
    (tmp_path / "link.tar").write_bytes(buffer.getvalue())
    (tmp_path / "out").mkdir()
    with pytest.raises(archives.UnsafeArchive, match="link or special file"):
        archives.extract(tmp_path / "link.tar", archives.TAR, tmp_path / "out", max_files=5, max_bytes=100)
