"""A run's COCO files built from a prepared dataset version's frozen split (real images, a real file://
artifact store, the real preparation first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO

from common.artifacts import ArtifactStore
from common.proto.raven.v1 import events_pb2, types_pb2
from services.trainer_worker.adapters.version_dataset import prepare_version_dataset
from services.trainer_worker.adapters.version_preparation import VersionSpec, prepare_version
from services.trainer_worker.domain.problems import DatasetInvalid
from services.trainer_worker.domain.split import SplitFractions
from tests.fixtures.dataset_versions import store_version, write_flights


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore((tmp_path / "artifacts").as_uri())


@pytest.fixture
def version(store: ArtifactStore, tmp_path: Path) -> events_pb2.TrainingDatasetVersion:
    """A READY version of 8 flights x 3 frames, as training_run hands it to a training job."""
    write_flights(tmp_path / "src", n_flights=8, frames=3)
    stored = store_version(store, tmp_path / "src", "datasets/d1/versions/1")
    spec = VersionSpec(
        file_manifest_key=stored.manifest_key, file_manifest_sha256=stored.manifest_sha256,
        blob_prefix=stored.blob_prefix, snapshot_sha256=stored.snapshot_sha256,
        annotation_files={"all": "annotations.json"}, fractions=SplitFractions(), option_seed=0,
        reference_input_size=640, output_prefix="dataset_versions/v1",
    )  # fmt: skip
    prepared = prepare_version(store, spec, lambda *a: None)
    assert prepared.problems == () and prepared.split is not None and prepared.split_manifest is not None
    split = prepared.split_manifest
    stored_split = types_pb2.Artifact(uri=split.key, size_bytes=split.size_bytes, sha256=split.sha256)
    return events_pb2.TrainingDatasetVersion(
        name="datasets/d1/versions/1", snapshot_sha256=stored.snapshot_sha256,
        split_sha256=prepared.split.split_sha256,
        split_manifest=stored_split,
        file_manifest=types_pb2.Artifact(uri=stored.manifest_key, sha256=stored.manifest_sha256),
        blob_prefix=stored.blob_prefix, annotations_file="annotations.json",
    )  # fmt: skip


def file_sets(ann: Path | None) -> set[str]:
    if ann is None:
        return set()
    return {i["file_name"] for i in json.loads(ann.read_text())["images"]}


def test_two_runs_get_the_versions_split_exactly(
    store: ArtifactStore, version: events_pb2.TrainingDatasetVersion, tmp_path: Path
) -> None:
    frozen = json.loads(store.read_bytes(version.split_manifest.uri))["file_names"]
    one = prepare_version_dataset(store, version, tmp_path / "run1")
    two = prepare_version_dataset(store, version, tmp_path / "run2")
    for prepared in (one, two):
        assert file_sets(prepared.train_ann) == set(frozen["train"])
        assert file_sets(prepared.val_ann) == set(frozen["val"])
        assert file_sets(prepared.test_ann) == set(frozen["test"])
        assert prepared.snapshot_sha256 == version.snapshot_sha256
        recorded = json.loads(prepared.manifest_path.read_text())
        assert (
            recorded["dataset_version"] == version.name and recorded["split_sha256"] == version.split_sha256
        )
        assert recorded["file_names"] == {s: sorted(frozen[s]) for s in ("train", "val", "test")}
        coco = COCO(str(prepared.val_ann))  # the images are there, byte for byte
        for image in coco.loadImgs(coco.getImgIds()):
            assert (prepared.image_root / image["file_name"]).is_file()
    assert one.counts == two.counts and one.counts["images"] == 24


def test_the_runs_classes_are_selected_without_moving_the_split(
    store: ArtifactStore, version: events_pb2.TrainingDatasetVersion, tmp_path: Path
) -> None:
    frozen = json.loads(store.read_bytes(version.split_manifest.uri))["file_names"]
    prepared = prepare_version_dataset(store, version, tmp_path / "run", class_names=["tire"])
    assert prepared.class_names == ("tire",)
    assert file_sets(prepared.train_ann) == set(frozen["train"])
    train = json.loads(prepared.train_ann.read_text())
    assert {a["category_id"] for a in train["annotations"]} == {1}


def test_a_damaged_image_blob_is_refused(
    store: ArtifactStore, version: events_pb2.TrainingDatasetVersion, tmp_path: Path
) -> None:
    files = json.loads(store.read_bytes(version.file_manifest.uri))
    image = next(f for f in files if f["path"].endswith(".jpg"))
    store.put_bytes(f"{version.blob_prefix}/{image['sha256']}", b"not the image")
    with pytest.raises(DatasetInvalid) as raised:
        prepare_version_dataset(store, version, tmp_path / "run")
    assert "damaged" in raised.value.message and image["path"] in raised.value.message


def test_a_split_manifest_that_is_not_the_recorded_one_is_refused(
    store: ArtifactStore, version: events_pb2.TrainingDatasetVersion, tmp_path: Path
) -> None:
    manifest = json.loads(store.read_bytes(version.split_manifest.uri))
    manifest["file_names"]["train"], manifest["file_names"]["val"] = (
        manifest["file_names"]["val"],
        manifest["file_names"]["train"],
    )
    store.put_bytes(version.split_manifest.uri, json.dumps(manifest).encode())
    with pytest.raises(DatasetInvalid, match="split manifest does not match"):
        prepare_version_dataset(store, version, tmp_path / "run")
