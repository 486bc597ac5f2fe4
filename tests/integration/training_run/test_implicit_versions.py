"""Runs on a plain dataset reference train on an implicit dataset version: created (or reused by snapshot
sha256) at Create, prepared by the worker's real intake, the run queued only once the version is READY and
FAILED with the version's problems when it is INVALID.

Real training_run server, real JetStream, SQLite and PostgreSQL (``harness``), the trainer worker's real
preparation intake and dataset step."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from common.artifacts import ArtifactStore
from common.proto.raven.v1 import datasets_pb2 as pb
from common.proto.raven.v1 import training_run_pb2, types_pb2
from services.trainer_worker.service_layer.steps import JobSteps
from tests.integration.training_run.conftest import Harness, awaiting_version, pull_jobs, write_dataset
from tests.integration.training_run.datasets_support import Datasets, dataset_root, preparing_worker


def images(path: Path | None) -> set[str]:
    return {i["file_name"] for i in json.loads(path.read_text())["images"]} if path else set()


async def versions_of(ds: Datasets, version_name: str) -> list[pb.DatasetVersion]:
    parent = version_name.split("/versions/")[0]
    found = await ds.stub.ListDatasetVersions(
        pb.ListDatasetVersionsRequest(parent=parent), metadata=ds.h.user
    )
    return list(found.dataset_versions)


async def test_plain_dataset_runs_train_on_one_implicit_version(harness: Harness, tmp_path: Path) -> None:
    h, ds = harness, Datasets.of(harness)
    first = await h.create(hyperparameters=types_pb2.Hyperparameters(epochs=2, seed=1))  # prepared meanwhile
    assert first.state == types_pb2.PENDING and first.dataset == h.dataset
    version = await ds.get_version(first.dataset_version)
    assert version.state == pb.DATASET_VERSION_STATE_READY
    assert first.dataset_snapshot_sha256 == version.snapshot_sha256
    assert first.split_sha256 == version.split_sha256 and version.split_sha256
    assert (await h.get(first.name)).dataset_version == version.name  # as stored
    dataset = await ds.stub.GetDataset(
        pb.GetDatasetRequest(name=version.name.split("/versions/")[0]), metadata=h.user
    )
    assert dataset.display_name == h.dataset and dataset.owner == "alice"

    # The same files again, another seed: the READY version is reused at once, nothing is prepared again.
    second = await h.stub.CreateTrainingRun(
        training_run_pb2.CreateTrainingRunRequest(
            training_run=training_run_pb2.TrainingRun(
                display_name="again", dataset=h.dataset, model_template="rtmdet_tiny",
                hyperparameters=types_pb2.Hyperparameters(epochs=2, seed=2),
            )
        ),
        metadata=h.user,
    )  # fmt: skip
    assert not awaiting_version(second)
    assert (second.dataset_version, second.split_sha256) == (version.name, version.split_sha256)
    assert [v.name for v in await versions_of(ds, version.name)] == [version.name]

    # Both jobs carry the version; the worker's dataset step builds the same frozen split for each seed.
    jobs = sorted(await pull_jobs(h.nc, h.names, expect=2), key=lambda j: j.hyperparameters.seed)
    assert [j.hyperparameters.seed for j in jobs] == [1, 2]
    steps = JobSteps(artifacts=ArtifactStore(h.app.settings.artifact_root), dataset_root="file:///nowhere")
    frozen = json.loads(ArtifactStore(h.app.settings.artifact_root).read_bytes(version.split_manifest.uri))
    for job in jobs:
        assert job.dataset == h.dataset and job.dataset_version.name == version.name
        assert job.dataset_version.split_sha256 == version.split_sha256
        prepared = await steps.prepare(job, tmp_path / job.run_id)
        for split in ("train", "val", "test"):
            assert images(getattr(prepared, f"{split}_ann")) == set(frozen["file_names"][split]), split
        assert json.loads(prepared.manifest_path.read_text())["dataset_version"] == version.name

    # Changed files are another snapshot: a second version of the same implicit dataset.
    write_dataset(dataset_root(h), h.dataset, ["bottle", "tire", "bag"], per_class=4)
    third = await h.create()
    assert third.dataset_version != version.name and not awaiting_version(third)
    assert third.dataset_version.split("/versions/")[0] == version.name.split("/versions/")[0]
    assert len(await versions_of(ds, version.name)) == 2


async def test_an_invalid_plain_dataset_fails_the_run_with_the_version_problems(harness: Harness) -> None:
    h = harness
    write_dataset(dataset_root(h), "broken")
    (dataset_root(h) / "broken" / "img" / "4.jpg").write_bytes(b"")  # a zero-byte image
    failed = await h.create(dataset="broken")  # the harness prepares the version: INVALID
    assert failed.state == types_pb2.FAILED, failed
    assert failed.failure.kind == types_pb2.INVALID_DATASET
    message = failed.failure.message
    assert f"dataset version {failed.dataset_version} is INVALID" in message and "img/4.jpg" in message
    assert "BytesIO" not in message and "Traceback" not in message
    version = await Datasets.of(h).get_version(failed.dataset_version)
    assert version.state == pb.DATASET_VERSION_STATE_INVALID and version.problem_count >= 1

    again = await h.stub.CreateTrainingRun(  # the same files: the INVALID version is reused, FAILED at once
        training_run_pb2.CreateTrainingRunRequest(
            training_run=training_run_pb2.TrainingRun(
                display_name="again", dataset="broken", model_template="rtmdet_tiny"
            )
        ),
        metadata=h.user,
    )
    assert again.state == types_pb2.FAILED and again.dataset_version == failed.dataset_version
    assert again.failure.message == message
    assert await pull_jobs(h.nc, h.names, expect=0, timeout=0.5) == []


async def test_a_run_waiting_for_its_version_has_no_job_and_can_be_cancelled(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    h.prepares = False  # no intake yet: the version stays PENDING
    waiting = await h.create()
    cancelled = await h.create(display_name="to cancel")
    assert awaiting_version(waiting) and waiting.dataset_version == cancelled.dataset_version
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await h.claim(waiting.name)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert waiting.dataset_version in (refused.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as in_use:  # the version a run waits for can't be deleted
        await Datasets.of(h).stub.DeleteDatasetVersion(
            pb.DeleteDatasetVersionRequest(name=waiting.dataset_version), metadata=h.user
        )
    assert in_use.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await h.stub.CancelTrainingRun(
        training_run_pb2.CancelTrainingRunRequest(name=cancelled.name), metadata=h.user
    )
    assert await pull_jobs(h.nc, h.names, expect=0, timeout=0.5) == []

    async with preparing_worker(h, "w-late"):
        queued = await h.wait_for(waiting.name, lambda r: not awaiting_version(r), timeout=60)
    assert queued.state == types_pb2.PENDING and queued.split_sha256
    jobs = await pull_jobs(h.nc, h.names, expect=1)
    assert [j.run_id for j in jobs] == [waiting.name.split("/")[1]]  # the cancelled run got none
    assert (await h.get(cancelled.name)).state == types_pb2.CANCELLED
    claimed = await h.claim(waiting.name)
    assert claimed.training_run.state == types_pb2.RUNNING
