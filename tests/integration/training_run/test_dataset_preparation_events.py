"""A version's preparation as the worker reports it over NATS: state, progress and result stored by the
event consumer, and WatchDatasetVersion streaming them with the resume contract of WatchTrainingRun."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from common.proto.raven.v1 import datasets_pb2 as pb
from common.proto.raven.v1 import types_pb2
from tests.integration.training_run.conftest import Harness
from tests.integration.training_run.datasets_support import (
    ALICE,
    BOB,
    Datasets,
    dataset_root,
    uri,
    write_coco,
)

READY = pb.DATASET_VERSION_STATE_READY
INVALID = pb.DATASET_VERSION_STATE_INVALID


def completed(problems: int = 0) -> pb.DatasetPreparationCompleted:
    profile = pb.DatasetProfile(
        images=3, annotations=3, empty_images=0, recommendation="",
        box_sizes=[pb.HistogramBin(label="8-16", lower=8, upper=16, count=3)],
        splits=[pb.SplitCount(split="train", images=2, annotations=2), pb.SplitCount(split="val", images=1)],
    )  # fmt: skip
    return pb.DatasetPreparationCompleted(
        problems=[
            pb.DatasetProblem(file="annotations.json", field=f"annotations[{i}].bbox", description="outside")
            for i in range(problems)
        ],
        problem_count=problems,
        split_sha256="ab" * 32 if not problems else "",
        split_manifest=types_pb2.Artifact(kind=types_pb2.SPLIT_MANIFEST, uri="dataset_versions/x/split.json"),
        split=pb.SplitSummary(origin=pb.SPLIT_ORIGIN_COMPUTED, group_key="directory", leaks_found=1),
        profile=profile,
        near_duplicate_groups=[pb.NearDuplicateGroup(files=["a.jpg", "b.jpg"], splits=["train", "val"])],
    )


async def _version(h: Harness, name: str = "flights") -> tuple[Datasets, pb.DatasetVersion]:
    ds = Datasets.of(h)
    write_coco(dataset_root(h) / name, seed=len(name))
    return ds, await ds.version((await ds.create()).name, uri(h, name))


async def _watch(ds: Datasets, name: str, token: str = "") -> list[pb.WatchDatasetVersionResponse]:
    request = pb.WatchDatasetVersionRequest(name=name, resume_token=token)
    return [r async for r in ds.stub.WatchDatasetVersion(request, metadata=ALICE, timeout=20)]


async def test_worker_events_make_it_ready_and_watch_streams_them_to_the_end(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    ds, version = await _version(h)
    watcher = asyncio.create_task(_watch(ds, version.name))
    await ds.report(version, started=pb.DatasetPreparationStarted(worker_id="w1"))
    await ds.wait_state(version.name, pb.DATASET_VERSION_STATE_PREPARING)
    step = pb.DATASET_PREPARATION_STEP_VALIDATING
    progress = pb.DatasetVersionProgress(step=step, done=2, total=3)
    await ds.report(version, progress=pb.DatasetPreparationProgressed(progress=progress))
    preparing = await ds.wait_state(version.name, pb.DATASET_VERSION_STATE_PREPARING)
    for _ in range(100):
        if preparing.progress.done == 2:
            break
        await asyncio.sleep(0.05)
        preparing = await ds.get_version(version.name)
    assert preparing.progress.step == step and preparing.progress.total == 3
    await ds.report(version, completed=completed())
    responses = await asyncio.wait_for(watcher, 20)

    kinds = [r.event.WhichOneof("payload") for r in responses]
    # The created event comes from the outbox relay, the test's own reports straight from NATS: either first.
    changes = [r.event.state_changed.to_state for r in responses if r.event.HasField("state_changed")]
    assert changes == [pb.DATASET_VERSION_STATE_PENDING, pb.DATASET_VERSION_STATE_PREPARING, READY], kinds
    assert {"started", "progress", "completed"} <= set(kinds)
    assert (
        responses[-1].event.state_changed.to_state == READY and responses[-1].dataset_version.state == READY
    )
    tokens = [int(r.resume_token) for r in responses]
    assert tokens == sorted(set(tokens))  # in order, none twice

    ready = await ds.get_version(version.name)
    assert ready.state == READY and ready.split_sha256 == "ab" * 32 and ready.ready_time.seconds > 0
    assert ready.profile.images == 3 and ready.profile.box_sizes[0].label == "8-16"
    assert ready.split.leaks_found == 1 and len(ready.near_duplicate_groups) == 1 and not ready.problems

    # Resume in the middle: exactly the rest. From the last token of a final version: nothing, at once.
    middle = len(responses) // 2
    rest = await _watch(ds, version.name, responses[middle].resume_token)
    assert [r.resume_token for r in rest] == [r.resume_token for r in responses[middle + 1 :]]
    assert await _watch(ds, version.name, responses[-1].resume_token) == []
    # A redelivered or late result changes nothing.
    await ds.report(version, completed=completed(problems=2))
    await asyncio.sleep(0.3)
    assert (await ds.get_version(version.name)).state == READY


async def test_problems_make_it_invalid_and_lists_leave_the_long_lists_out(sqlite_harness: Harness) -> None:
    ds, version = await _version(sqlite_harness, "broken")
    await ds.report(version, completed=completed(problems=3))
    invalid = await ds.wait_state(version.name, INVALID)
    assert invalid.problem_count == 3 and invalid.problems[0].field == "annotations[0].bbox"
    listed = await ds.stub.ListDatasetVersions(
        pb.ListDatasetVersionsRequest(parent=version.name.rsplit("/versions/", 1)[0], states=[INVALID]),
        metadata=ALICE,
    )
    (summary,) = listed.dataset_versions
    assert summary.problem_count == 3 and not summary.problems and not summary.near_duplicate_groups
    changes = [
        r.event.state_changed for r in await _watch(ds, version.name) if r.event.HasField("state_changed")
    ]
    assert [c.to_state for c in changes] == [pb.DATASET_VERSION_STATE_PENDING, INVALID]
    assert "3 problem" in changes[-1].reason


async def test_a_worker_failure_makes_it_invalid_and_a_new_version_may_follow(
    sqlite_harness: Harness,
) -> None:
    h = sqlite_harness
    ds, version = await _version(h, "flaky")
    failure = types_pb2.Failure(
        kind=types_pb2.ARTIFACT_MISMATCH, message="img/a.jpg does not match its sha256"
    )
    await ds.report(version, failed=pb.DatasetPreparationFailed(failure=failure))
    invalid = await ds.wait_state(version.name, INVALID)
    assert invalid.failure.kind == types_pb2.ARTIFACT_MISMATCH and "sha256" in invalid.failure.message
    # Content addressing skips a version that failed for another reason than its content.
    again = await ds.version(version.name.rsplit("/versions/", 1)[0], uri(h, "flaky"))
    assert (
        again.version_number == version.version_number + 1 and again.state == pb.DATASET_VERSION_STATE_PENDING
    )


async def test_watch_bad_input_and_scoping(sqlite_harness: Harness) -> None:
    ds, version = await _version(sqlite_harness, "scoped")
    for token in ("abc", "99999999999"):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await _watch(ds, version.name, token)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, token
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        request = pb.WatchDatasetVersionRequest(name=version.name)
        [r async for r in ds.stub.WatchDatasetVersion(request, metadata=BOB, timeout=10)]
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
