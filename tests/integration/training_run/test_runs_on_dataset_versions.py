"""Runs on a dataset version: Create checks it, the job carries its frozen split, the worker's dataset step
builds train/val/test from it whatever the run's seed, and a version in use can't be deleted.

Real training_run server, real JetStream, real SQLite; versions are made READY by the trainer worker's real
preparation intake."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from common.artifacts import ArtifactStore
from common.hyperparameters import SMALL_DATASET_TRAIN_IMAGES, HyperParams
from common.mmdet_config import build_config
from common.proto.raven.v1 import datasets_pb2 as pb
from common.proto.raven.v1 import trained_model_pb2, training_run_pb2, types_pb2
from services.trainer_worker.service_layer.steps import JobSteps
from tests.fixtures.dataset_versions import write_flights
from tests.integration.training_run.conftest import Harness, pull_jobs
from tests.integration.training_run.datasets_support import (
    BOB,
    Datasets,
    dataset_root,
    preparing_worker,
    uri,
)


async def ready_version(h: Harness, ds: Datasets, directory: str = "survey") -> pb.DatasetVersion:
    write_flights(dataset_root(h) / directory, n_flights=8, frames=3)
    version = await ds.version((await ds.create()).name, uri(h, directory))
    async with preparing_worker(
        h, "w-versions"
    ):  # started once the job is queued, as test_dataset_version_e2e does
        return await ds.wait_state(version.name, pb.DATASET_VERSION_STATE_READY, timeout=60)


def on_version(version: str, seed: int = 1) -> dict[str, Any]:
    return {
        "dataset": "",
        "dataset_version": version,
        "class_names": ["bottle", "tire"],
        "hyperparameters": types_pb2.Hyperparameters(epochs=2, seed=seed),
    }


def images(path: Path | None) -> set[str]:
    return {i["file_name"] for i in json.loads(path.read_text())["images"]} if path else set()


async def test_two_seeds_on_one_version_train_and_validate_on_the_same_images(
    sqlite_harness: Harness, tmp_path: Path
) -> None:
    h, ds = sqlite_harness, Datasets.of(sqlite_harness)
    version = await ready_version(h, ds)
    runs = [await h.create(**on_version(version.name, seed)) for seed in (1, 2)]
    for run in runs:
        assert run.dataset_version == version.name and run.dataset == ""
        assert run.dataset_snapshot_sha256 == version.snapshot_sha256
        assert run.split_sha256 == version.split_sha256
        assert (await h.get(run.name)).split_sha256 == version.split_sha256  # as stored
    jobs = sorted(await pull_jobs(h.nc, h.names, expect=2), key=lambda j: j.hyperparameters.seed)
    assert [j.hyperparameters.seed for j in jobs] == [1, 2]
    steps = JobSteps(artifacts=ArtifactStore(h.app.settings.artifact_root), dataset_root="file:///nowhere")
    prepared = []
    for job in jobs:
        assert job.dataset == "" and job.dataset_version.name == version.name
        assert job.dataset_version.split_manifest.sha256 == version.split_manifest.sha256
        assert job.dataset_version.snapshot_sha256 == version.snapshot_sha256
        prepared.append(await steps.prepare(job, tmp_path / job.run_id))  # the worker's dataset step
    frozen = json.loads(ArtifactStore(h.app.settings.artifact_root).read_bytes(version.split_manifest.uri))
    for split in ("train", "val", "test"):
        written = [images(getattr(p, f"{split}_ann")) for p in prepared]
        assert written[0] == written[1] == set(frozen["file_names"][split]), split
    manifests = [json.loads(p.manifest_path.read_text()) for p in prepared]
    assert manifests[0]["file_names"] == manifests[1]["file_names"]
    assert {m["split_sha256"] for m in manifests} == {version.split_sha256}

    # A small dataset by its profile's train split: a run of the template's 30 epochs that leaves early
    # stopping unset gets rtmdet_tiny's default (15 epochs at val_interval 5: patience 3), stored on the run.
    train = next(count.images for count in version.profile.splits if count.split == "train")
    assert 0 < train < SMALL_DATASET_TRAIN_IMAGES
    preview = await h.stub.CreateTrainingRun(
        training_run_pb2.CreateTrainingRunRequest(
            training_run=training_run_pb2.TrainingRun(
                display_name="defaults", dataset_version=version.name, model_template="rtmdet_tiny",
                class_names=["bottle", "tire"],
            ),
            validate_only=True,
        ),
        metadata=h.user,
    )  # fmt: skip
    assert preview.hyperparameters.early_stopping.patience == 3
    assert preview.hyperparameters.early_stopping.min_delta == 0.001


async def test_create_refuses_a_missing_hidden_unready_or_malformed_version(sqlite_harness: Harness) -> None:
    h, ds = sqlite_harness, Datasets.of(sqlite_harness)
    write_flights(dataset_root(h) / "pending", n_flights=4, frames=2)
    dataset = await ds.create()
    pending = await ds.version(dataset.name, uri(h, "pending"))  # no worker: stays PENDING

    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await h.create(**on_version(f"{dataset.name}/versions/99"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert f"{dataset.name}/versions/99" in (unknown.value.details() or "")

    with pytest.raises(grpc.aio.AioRpcError) as hidden:  # bob may not view alice's dataset
        await h.create(**on_version(pending.name), metadata=BOB)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as unready:
        await h.create(**on_version(pending.name))
    assert unready.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "PENDING" in (unready.value.details() or "") and pending.name in (unready.value.details() or "")

    for bad in ("datasets/x", "waste/v1", f"{dataset.name}/versions/0"):
        with pytest.raises(grpc.aio.AioRpcError) as malformed:
            await h.create(**on_version(bad))
        assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert "training_run.dataset_version" in (malformed.value.details() or "")

    with pytest.raises(grpc.aio.AioRpcError) as both:
        await h.create(**{**on_version(pending.name), "dataset": h.dataset})
    assert both.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not both" in (both.value.details() or "")


async def test_a_version_a_run_uses_is_not_deleted_until_the_run_is_final(sqlite_harness: Harness) -> None:
    h, ds = sqlite_harness, Datasets.of(sqlite_harness)
    version = await ready_version(h, ds)
    run = await h.create(**on_version(version.name))
    delete = pb.DeleteDatasetVersionRequest(name=version.name)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ds.stub.DeleteDatasetVersion(delete, metadata=h.user)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert run.name in (refused.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as whole:
        await ds.stub.DeleteDataset(
            pb.DeleteDatasetRequest(name=version.name.split("/versions/")[0]), metadata=h.user
        )
    assert whole.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    await h.stub.CancelTrainingRun(training_run_pb2.CancelTrainingRunRequest(name=run.name), metadata=h.user)
    await h.wait_for(run.name, lambda r: r.state == types_pb2.CANCELLED)
    await ds.stub.DeleteDatasetVersion(delete, metadata=h.user)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await ds.get_version(version.name)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_base_model_that_trained_on_the_versions_val_images_is_refused(
    sqlite_harness: Harness,
) -> None:
    h, ds = sqlite_harness, Datasets.of(sqlite_harness)
    version = await ready_version(h, ds)
    store = ArtifactStore(h.app.settings.artifact_root)
    frozen = json.loads(store.read_bytes(version.split_manifest.uri))["file_names"]
    files = {e["path"]: e["sha256"] for e in json.loads(store.read_bytes(version.file_manifest.uri))}
    # The base model trained on two of the version's val images (distinct contents).
    leaked = sorted({files[n] for n in frozen["val"]})[:2]

    config = struct_pb2.Struct()  # a base model's stored config, as a trained model carries it
    config.update(json.loads(json.dumps(build_config("rtmdet_tiny", ["bottle", "tire"], HyperParams()).data)))

    def base(name: str, dataset: str, trained_on: list[str]) -> str:
        manifest = store.put_bytes(
            f"runs/{name}/split_manifest.json", json.dumps({"train_sha256": trained_on}).encode()
        )
        split = types_pb2.Artifact(kind=types_pb2.SPLIT_MANIFEST, uri=manifest.key, sha256=manifest.sha256)
        h.trained_models.models[f"trainedModels/{name}"] = trained_model_pb2.TrainedModel(
            name=f"trainedModels/{name}", published=True, class_names=["bottle", "tire"],
            model_template="rtmdet_tiny", checkpoint=types_pb2.Artifact(uri=f"models/{name}/ckpt.pth"),
            dataset=dataset, artifacts=[split], config=config,
        )  # fmt: skip
        return f"trainedModels/{name}"

    elsewhere = base(f"other{uuid.uuid4().hex[:8]}", "survey-2025", [*leaked, "f" * 64])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await h.create(**on_version(version.name), base_model=elsewhere)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "2 image(s)" in (refused.value.details() or "") and "allow_split_overlap" in (
        refused.value.details() or ""
    )

    request = training_run_pb2.CreateTrainingRunRequest(
        training_run=training_run_pb2.TrainingRun(
            display_name="accepting",
            dataset_version=version.name,
            base_model=elsewhere,
            model_template="rtmdet_tiny",
        ),
        allow_split_overlap=True,
    )
    accepted = await h.stub.CreateTrainingRun(request, metadata=h.user)
    assert accepted.base_model == elsewhere

    clean = base(f"clean{uuid.uuid4().hex[:8]}", "survey-2025", ["f" * 64])  # trained on none of them
    assert (await h.create(**on_version(version.name), base_model=clean)).dataset_version == version.name
    # A base model trained on this very version shares its split: never refused.
    same = base(f"same{uuid.uuid4().hex[:8]}", version.name, leaked)
    assert (await h.create(**on_version(version.name), base_model=same)).dataset_version == version.name
