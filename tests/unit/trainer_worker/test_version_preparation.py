"""A dataset version prepared from its stored files (real images, a real file:// artifact store)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common.artifacts import ArtifactStore
from services.trainer_worker.adapters.version_preparation import (
    VersionFilesChanged,
    VersionSpec,
    prepare_version,
)
from services.trainer_worker.domain.split import SplitFractions
from tests.fixtures.dataset_versions import frame, scene, store_version, write_flights


def spec_for(store: ArtifactStore, directory: Path, files: dict[str, str] | None = None) -> VersionSpec:
    stored = store_version(store, directory, "datasets/d1/versions/1")
    return VersionSpec(
        file_manifest_key=stored.manifest_key,
        file_manifest_sha256=stored.manifest_sha256,
        blob_prefix=stored.blob_prefix,
        snapshot_sha256=stored.snapshot_sha256,
        annotation_files=files or {"all": "annotations.json"},
        fractions=SplitFractions(),
        option_seed=0,
        reference_input_size=640,
        output_prefix="datasets/d1/versions/1/prepared",
    )


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore((tmp_path / "artifacts").as_uri())


def test_flights_stay_whole_and_near_duplicates_are_reported(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "src"
    doc = write_flights(source, n_flights=12, frames=4)
    steps: list[tuple[str, int, int]] = []
    prepared = prepare_version(store, spec_for(store, source), lambda *a: steps.append(a))
    assert prepared.problems == () and prepared.split is not None and prepared.profile is not None
    split_of = {i.file_name: s for s, ds in prepared.split.splits.items() for i in ds.images}
    assert len(split_of) == len(doc["images"])  # type: ignore[arg-type]
    for f in range(12):
        assert len({split_of[f"flights/{f}/{k}.jpg"] for k in range(4)}) == 1, f
    assert split_of["flights/0/0.jpg"] == split_of["flights/1/0.jpg"]  # the copied frame joined the flights
    reports = prepared.split.duplicates
    exact = [r for r in reports if r.duplicates.kind == "exact"]
    assert [r.duplicates.file_names for r in exact] == [("flights/0/0.jpg", "flights/1/0.jpg")]
    near = [r for r in reports if r.duplicates.kind == "near"]
    assert near
    assert any(set(r.duplicates.file_names) >= {"flights/3/0.jpg", "flights/3/1.jpg"} for r in near)
    assert prepared.split.grouping == "sequence" and prepared.profile.images == 48
    assert [s for s, _, _ in steps][:2] == ["VERIFYING", "VALIDATING"] and steps[-1][0] == "PROFILING"
    assert prepared.split_manifest is not None
    manifest = json.loads(store.read_bytes(prepared.split_manifest.key))
    assert manifest["split_sha256"] == prepared.split.split_sha256 and manifest["grouping"] == "sequence"
    again = prepare_version(store, spec_for(store, source), lambda *a: None)
    assert again.split is not None and again.split.split_sha256 == prepared.split.split_sha256
    train = json.loads(store.read_bytes("datasets/d1/versions/1/prepared/train.json"))
    assert {i["file_name"] for i in train["images"]} == {n for n, s in split_of.items() if s == "train"}


def test_every_problem_is_returned_at_once_with_its_file(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "src"
    write_flights(source, n_flights=6, frames=2)
    rng = np.random.default_rng(5)
    (source / "flights/0/0.jpg").write_bytes(b"")
    whole = (source / "flights/0/1.jpg").read_bytes()
    (source / "flights/0/1.jpg").write_bytes(whole[: len(whole) // 2])
    (source / "flights/1/0.jpg").write_bytes(frame(scene(rng), rng, orientation=6))  # square: fits turned
    doc = json.loads((source / "annotations.json").read_text())
    doc["images"][3]["width"] = 32  # flights/1/1.jpg is 64x64
    doc["images"].append({"id": 99, "file_name": "flights/9/9.jpg", "width": 64, "height": 64})
    (source / "annotations.json").write_text(json.dumps(doc))
    prepared = prepare_version(store, spec_for(store, source), lambda *a: None)
    assert prepared.split is None and prepared.problem_count == 4
    files = [f for f, _ in prepared.problems]
    assert files == ["flights/0/0.jpg", "flights/0/1.jpg", "flights/1/1.jpg", "flights/9/9.jpg"]
    empty, cut, size, missing = (d for _, d in prepared.problems)
    assert empty == "image id 1: file 'flights/0/0.jpg' is empty (0 bytes)"
    assert cut.startswith("image id 2: file 'flights/0/1.jpg' is truncated or corrupt: it does not decode")
    assert size == "image id 4: file 'flights/1/1.jpg' is 64x64 pixels but the annotations say 32x64"
    assert missing == "image id 99: file 'flights/9/9.jpg' not found in the dataset version"
    assert "4 problems" in prepared.summary


def test_a_carried_split_is_kept_and_its_leaks_reported(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "src"
    doc = write_flights(source, n_flights=6, frames=2)
    images = doc["images"]
    train_ids = {i["id"] for i in images if i["sequence"] in (0, 2, 3, 4)}  # type: ignore[index]
    for split, keep in (("train", train_ids), ("val", {i["id"] for i in images} - train_ids)):  # type: ignore[index]
        part = {
            "images": [i for i in images if i["id"] in keep],  # type: ignore[index]
            "annotations": [a for a in doc["annotations"] if a["image_id"] in keep],  # type: ignore[index,attr-defined]
            "categories": doc["categories"],
        }
        (source / f"{split}.json").write_text(json.dumps(part))
    (source / "annotations.json").unlink()
    spec = spec_for(store, source, {"train": "train.json", "val": "val.json"})
    prepared = prepare_version(store, spec, lambda *a: None)
    assert prepared.split is not None and prepared.split.given
    # flights/1/0 (val) is a copy of flights/0/0 and a near copy of flights/0/1 (train): 3 images leak
    assert prepared.split.moved_images == 0 and prepared.split.leaked_images == 3
    assert {(k.reason, k.file_names) for k in prepared.split.leaks} >= {
        ("exact duplicate", ("flights/0/0.jpg", "flights/1/0.jpg"))
    }


def test_a_stored_file_that_changed_fails_the_preparation(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "src"
    write_flights(source, n_flights=4, frames=1)
    spec = spec_for(store, source)
    entry = next(
        e for e in json.loads(store.read_bytes(spec.file_manifest_key)) if e["path"].endswith(".jpg")
    )
    store.put_bytes(f"{spec.blob_prefix}/{entry['sha256']}", b"tampered")
    with pytest.raises(VersionFilesChanged, match="does not match its sha256"):
        prepare_version(store, spec, lambda *a: None)
