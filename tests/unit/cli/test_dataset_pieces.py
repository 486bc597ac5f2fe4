"""Pure parts of ``ravenctl datasets``: names, split options, the archive an upload sends, profile tables."""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
from pathlib import Path

import grpc
import pytest
import typer
from rich.console import Console

from common.client import RavenError
from common.client.upload import prepare_archive
from common.proto.raven.v1 import datasets_pb2 as pb
from services.cli.dataset_views import profile_tables
from services.cli.datasets import dataset_name, is_version, split_options, version_name


def test_names_accept_full_and_short_forms() -> None:
    assert dataset_name("abc") == dataset_name("datasets/abc") == "datasets/abc"
    full = "datasets/abc/versions/2"
    assert version_name(full) == version_name("abc/versions/2") == version_name("abc/2") == full
    assert is_version("abc/2") and not is_version("datasets/abc")
    for bad in ("abc", "a/b/c", "datasets/a/b/c/d"):
        with pytest.raises(typer.Exit):
            version_name(bad)
    with pytest.raises(typer.Exit):
        dataset_name("abc/2")


def test_split_options_only_what_was_given() -> None:
    assert split_options(None, None, None) is None
    options = split_options(0.8, None, 0)
    assert options is not None and options.HasField("seed") and options.seed == 0
    assert not options.HasField("val_fraction") and options.train_fraction == 0.8


def test_a_directory_becomes_a_tar_of_its_files_with_the_size_and_sha256_sent(tmp_path: Path) -> None:
    (tmp_path / "coco" / "img").mkdir(parents=True)
    (tmp_path / "coco" / "annotations.json").write_text("{}")
    (tmp_path / "coco" / "img" / "a b.jpg").write_bytes(b"\xff\xd8 jpeg")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    archive = prepare_archive(tmp_path / "coco", scratch)
    data = archive.path.read_bytes()
    assert archive.format == pb.ARCHIVE_FORMAT_TAR and archive.from_directory
    assert archive.size == len(data) and archive.sha256 == hashlib.sha256(data).hexdigest()
    with tarfile.open(archive.path) as tf:
        assert sorted(tf.getnames()) == ["annotations.json", "img/a b.jpg"]
        assert all(member.isfile() for member in tf.getmembers())


def test_an_archive_is_sent_as_it_is_and_anything_else_is_refused(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "d.bin", "w") as zf:
        zf.writestr("annotations.json", "{}")
    archive = prepare_archive(tmp_path / "d.bin", tmp_path)
    assert archive.format == pb.ARCHIVE_FORMAT_ZIP and archive.path == tmp_path / "d.bin"
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RavenError) as caught:
        prepare_archive(tmp_path / "notes.txt", tmp_path)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT and "notes.txt" in caught.value.message
    (tmp_path / "empty").mkdir()
    with pytest.raises(RavenError, match="holds no files"):
        prepare_archive(tmp_path / "empty", tmp_path)


def _bins(labels: tuple[str, ...], counts: tuple[int, ...]) -> list[pb.HistogramBin]:
    return [pb.HistogramBin(label=label, count=count) for label, count in zip(labels, counts, strict=True)]


def test_profile_tables_fit_80_columns_with_long_names() -> None:
    profile = pb.DatasetProfile(
        images=1200,
        annotations=34567,
        splits=[
            pb.SplitCount(split=s, images=400, annotations=11000, groups=12) for s in ("train", "val", "test")
        ],
        classes=[
            pb.ClassProfile(
                class_name=f"a rather long class name number {i}",
                images=300,
                annotations=9000,
                splits=[
                    pb.SplitCount(split="train", annotations=6000),
                    pb.SplitCount(split="val", annotations=2000),
                ],
            )
            for i in range(3)
        ],
        box_sizes=_bins(
            ("<8", "8-16", "16-32", "32-64", "64-128", ">128"), (20000, 9000, 4000, 1000, 500, 67)
        ),
        coco_box_sizes=_bins(("small", "medium", "large"), (33000, 1400, 167)),
        image_sizes=[pb.ImageSizeCount(width=4000 + i, height=3000, images=10) for i in range(12)],
        recommendation="most boxes are below 8 px at 640: train at 1280 or tile the images " * 2,
        reference_input_size=640,
    )
    group = pb.NearDuplicateGroup(
        files=["flights/2026-05-01 north field/frame 000123.jpg"] * 2,
        splits=["train", "val"],
        max_distance=3,
        resolved_split="train",
    )
    version = pb.DatasetVersion(name="datasets/0a1b2c3d4e5f/versions/12", profile=profile,
                                near_duplicate_groups=[group])  # fmt: skip
    console = Console(width=80, record=True)
    for table in profile_tables(version, width=80):
        console.print(table)
    text = console.export_text()
    assert max(map(len, text.splitlines())) <= 80
    assert "20000" in text and "57.9%" in text and "2 more sizes" in text and "4011x3000" not in text
