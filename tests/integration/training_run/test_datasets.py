"""DatasetService over a real channel, real NATS and a real database: datasets, versions from a URL
(content-addressed, queued for preparation), scoping, bad input, and the in-use delete guard."""

from __future__ import annotations

import hashlib
import json

import grpc
import pytest
from sqlalchemy import text

from common.artifacts import ArtifactStore
from common.proto.raven.v1 import datasets_pb2 as pb
from common.proto.raven.v1 import training_run_pb2 as tr
from tests.integration.training_run.conftest import Harness
from tests.integration.training_run.datasets_support import (
    ALICE,
    BOB,
    CAROL_SEES_ALL,
    Datasets,
    dataset_root,
    pull_preparation_jobs,
    readable,
    uri,
    violations,
    write_coco,
)


async def test_datasets_create_get_list_delete_scoped_by_owner(harness: Harness, unique: str) -> None:
    ds = Datasets.of(harness)
    first = await ds.create("flights", request_id=f"r-{unique}")
    again = await ds.create("another name", request_id=f"r-{unique}")
    assert again.name == first.name and first.owner == "alice" and first.name.startswith("datasets/")
    got = await ds.stub.GetDataset(pb.GetDatasetRequest(name=first.name), metadata=ALICE)
    assert got.display_name == "flights" and got.version_count == 0 and got.latest_version == ""

    mine = await ds.stub.ListDatasets(pb.ListDatasetsRequest(page_size=1), metadata=ALICE)
    assert [d.name for d in mine.datasets] == [first.name] and mine.total_size == 1
    assert (await ds.stub.ListDatasets(pb.ListDatasetsRequest(), metadata=BOB)).total_size == 0
    seen_by_carol = await ds.stub.ListDatasets(pb.ListDatasetsRequest(), metadata=CAROL_SEES_ALL)
    assert first.name in [d.name for d in seen_by_carol.datasets]

    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await ds.stub.GetDataset(pb.GetDatasetRequest(name=first.name), metadata=BOB)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as not_owner:
        await ds.stub.DeleteDataset(pb.DeleteDatasetRequest(name=first.name), metadata=CAROL_SEES_ALL)
    assert not_owner.value.code() == grpc.StatusCode.PERMISSION_DENIED

    await ds.stub.DeleteDataset(pb.DeleteDatasetRequest(name=first.name), metadata=ALICE)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await ds.stub.GetDataset(pb.GetDatasetRequest(name=first.name), metadata=ALICE)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND and first.name in (gone.value.details() or "")


async def test_bad_dataset_requests_name_each_field(sqlite_harness: Harness) -> None:
    ds = Datasets.of(sqlite_harness)
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await ds.create("")
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "dataset.display_name" in violations(empty.value)
    for name in ("datasets/", "trainingRuns/abc", "datasets/a/b"):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await ds.stub.GetDataset(pb.GetDatasetRequest(name=name), metadata=ALICE)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in violations(bad.value)
    with pytest.raises(grpc.aio.AioRpcError) as token:
        await ds.stub.ListDatasets(pb.ListDatasetsRequest(page_token="garbage!"), metadata=ALICE)
    assert token.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in violations(token.value)


async def test_version_from_a_url_is_pinned_content_addressed_and_queued(sqlite_harness: Harness) -> None:
    h, ds = sqlite_harness, Datasets.of(sqlite_harness)
    write_coco(dataset_root(h) / "flights" / "day1")
    dataset = await ds.create()
    version = await ds.version(dataset.name, uri(h, "flights/day1"))
    assert version.name == f"{dataset.name}/versions/1" and version.version_number == 1
    assert version.state == pb.DATASET_VERSION_STATE_PENDING and len(version.snapshot_sha256) == 64
    assert version.file_count == 4 and version.split_options.train_fraction == pytest.approx(0.7)

    # The manifest and every blob are in the artifact store, and hash to what the manifest says.
    store = ArtifactStore(h.app.settings.artifact_root)
    manifest = json.loads(store.read_bytes(version.file_manifest.uri))
    assert sorted(e["path"] for e in manifest) == [
        "annotations.json", "img/frame 0.jpg", "img/frame 1.jpg", "img/frame 2.jpg"
    ]  # fmt: skip
    for entry in manifest:
        assert (
            hashlib.sha256(store.read_bytes(f"dataset_blobs/{entry['sha256']}")).hexdigest()
            == entry["sha256"]
        )

    # Same files, same split options: the same version, nothing queued twice.
    assert (await ds.version(dataset.name, uri(h, "flights/day1") + "/")).name == version.name
    other_split = await ds.version(
        dataset.name, uri(h, "flights/day1"), split_options=pb.SplitOptions(seed=7)
    )
    assert other_split.version_number == 2 and other_split.snapshot_sha256 == version.snapshot_sha256

    jobs = await pull_preparation_jobs(h, expect=2)
    assert sorted(j.dataset_version for j in jobs) == [version.name, other_split.name]
    job = next(j for j in jobs if j.dataset_version == version.name)
    assert job.snapshot_sha256 == version.snapshot_sha256 and job.annotations_file == "annotations.json"
    assert job.file_manifest.uri == version.file_manifest.uri and job.blob_prefix == "dataset_blobs"
    assert not job.own_split and job.split_options.val_fraction == pytest.approx(0.2)

    got = await ds.stub.GetDataset(pb.GetDatasetRequest(name=dataset.name), metadata=ALICE)
    assert got.version_count == 2 and got.latest_version == other_split.name
    listed = await ds.stub.ListDatasetVersions(
        pb.ListDatasetVersionsRequest(parent=dataset.name, page_size=1), metadata=ALICE
    )
    assert [v.name for v in listed.dataset_versions] == [other_split.name] and listed.total_size == 2
    rest = await ds.stub.ListDatasetVersions(
        pb.ListDatasetVersionsRequest(parent=dataset.name, page_token=listed.next_page_token), metadata=ALICE
    )
    assert [v.name for v in rest.dataset_versions] == [version.name] and not rest.next_page_token


async def test_a_split_dataset_keeps_its_own_split_files(sqlite_harness: Harness) -> None:
    h, ds = sqlite_harness, Datasets.of(sqlite_harness)
    directory = write_coco(dataset_root(h) / "split")
    coco = (directory / "annotations.json").read_text()
    (directory / "annotations.json").unlink()
    (directory / "train.json").write_text(coco)
    (directory / "val.json").write_text(coco)
    version = await ds.version((await ds.create()).name, uri(h, "split"))
    (job,) = await pull_preparation_jobs(h, expect=1)
    assert job.dataset_version == version.name and not job.annotations_file
    assert {(f.split, f.annotations_file) for f in job.own_split} == {
        ("train", "train.json"),
        ("val", "val.json"),
    }


async def test_bad_version_requests_are_invalid_argument_with_readable_reasons(
    sqlite_harness: Harness,
) -> None:
    h, ds = sqlite_harness, Datasets.of(sqlite_harness)
    root = dataset_root(h)
    (root / "no_annotations").mkdir(parents=True)
    (root / "no_annotations" / "a.jpg").write_bytes(b"x")
    dataset = await ds.create()
    field = "dataset_version.source_uri"
    for source in (
        "", "file:///etc", uri(h, "missing"), uri(h, "../outside"), uri(h, "no_annotations"),
        "s3://bucket/data", f"{h.app.settings.dataset_root}",
    ):  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await ds.version(dataset.name, source)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, source
        assert field in violations(bad.value), source
        readable(bad.value, root)
    with pytest.raises(grpc.aio.AioRpcError) as split:
        await ds.version(
            dataset.name, uri(h, "no_annotations"), split_options=pb.SplitOptions(train_fraction=1.5)
        )
    assert "dataset_version.split_options.train_fraction" in violations(split.value)
    with pytest.raises(grpc.aio.AioRpcError) as parent:
        await ds.version("datasets", uri(h, "no_annotations"))
    assert "parent" in violations(parent.value)
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await ds.version("datasets/0123456789abcdef", uri(h, "no_annotations"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await ds.version(dataset.name, uri(h, "no_annotations"), metadata=CAROL_SEES_ALL)
    assert foreign.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await ds.version(dataset.name, uri(h, "no_annotations"), metadata=BOB)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as no_version:
        await ds.get_version(f"{dataset.name}/versions/9")
    assert no_version.value.code() == grpc.StatusCode.NOT_FOUND


async def test_delete_is_refused_while_a_run_uses_the_version(harness: Harness) -> None:
    h, ds = harness, Datasets.of(harness)
    write_coco(dataset_root(h) / "inuse")
    dataset = await ds.create()
    version = await ds.version(dataset.name, uri(h, "inuse"))
    run = await h.create()
    async with h.app.engine.begin() as connection:  # runs name their version once they take one (issue 14)
        await connection.execute(
            text("UPDATE training_runs SET dataset_version = :v WHERE id = :id"),
            {"v": version.name, "id": run.name.split("/")[1]},
        )
    for call, request in (
        (ds.stub.DeleteDatasetVersion, pb.DeleteDatasetVersionRequest(name=version.name)),
        (ds.stub.DeleteDataset, pb.DeleteDatasetRequest(name=dataset.name)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(request, metadata=ALICE)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert run.name in (refused.value.details() or "")
    await h.stub.CancelTrainingRun(tr.CancelTrainingRunRequest(name=run.name), metadata=h.user)
    await ds.stub.DeleteDatasetVersion(pb.DeleteDatasetVersionRequest(name=version.name), metadata=ALICE)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await ds.get_version(version.name)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    await ds.stub.DeleteDataset(pb.DeleteDatasetRequest(name=dataset.name), metadata=ALICE)
