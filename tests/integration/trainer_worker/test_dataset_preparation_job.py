"""Dataset version preparation jobs on real JetStream: consumed, prepared off the event loop, progress and the
result (READY with profile and split manifest, or INVALID with every problem) published, the job acked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from common.artifacts import ArtifactStore
from common.nats_streams import DATASET_WORKER_CONSUMER, DEFAULT_RETRY, StreamNames, connect
from common.proto.raven.v1 import datasets_pb2, types_pb2
from services.trainer_worker.adapters.dataset_jobs import DatasetEventPublisher
from services.trainer_worker.adapters.jobs import DATASET_JOBS, JobMessage, JobQueue
from services.trainer_worker.domain.job import Settlement
from services.trainer_worker.entrypoints.dataset_worker import DatasetWorker
from services.trainer_worker.service_layer.dataset_preparation import PreparationServices, prepare_job
from tests.fixtures.dataset_versions import store_version, write_flights


@pytest.fixture
async def js_names(nats_url: str, unique: str) -> AsyncIterator[tuple[JetStreamContext, StreamNames]]:
    names = StreamNames(jobs=f"JOBS_{unique}", events=f"EVENTS_{unique}", prefix=f"d{unique}")
    nc = await connect(nats_url, "test-dataset-jobs")
    js = nc.jetstream()
    yield js, names
    for stream in (names.jobs, names.events):
        try:
            await js.delete_stream(stream)
        except Exception:
            pass
    await nc.close()


def job_for(store: ArtifactStore, source: Path, version: str) -> datasets_pb2.DatasetPreparationJob:
    stored = store_version(store, source, f"{version}/files")
    return datasets_pb2.DatasetPreparationJob(
        dataset_version=version,
        attempt=1,
        file_manifest=types_pb2.Artifact(uri=stored.manifest_key, sha256=stored.manifest_sha256),
        blob_prefix=stored.blob_prefix,
        snapshot_sha256=stored.snapshot_sha256,
        annotations_file="annotations.json",
        reference_input_size=640,
        output_prefix=f"{version}/prepared",
    )


async def events_of(js: JetStreamContext, names: StreamNames) -> list[datasets_pb2.DatasetVersionEvent]:
    info = await js.stream_info(names.events)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        out.append(datasets_pb2.DatasetVersionEvent.FromString((await js.get_msg(names.events, seq)).data))
    return out


async def test_jobs_are_prepared_and_their_results_published(
    js_names: tuple[JetStreamContext, StreamNames], tmp_path: Path
) -> None:
    js, names = js_names
    store = ArtifactStore((tmp_path / "artifacts").as_uri())
    queue = JobQueue(js, names, ack_wait=30.0, jobs=DATASET_JOBS)
    await queue.start()
    good, bad = tmp_path / "good", tmp_path / "bad"
    write_flights(good, n_flights=10, frames=3)
    write_flights(bad, n_flights=4, frames=2)
    (bad / "flights/2/1.jpg").write_bytes(b"")
    whole = (bad / "flights/3/0.jpg").read_bytes()
    (bad / "flights/3/0.jpg").write_bytes(whole[: len(whole) // 2])
    for version, source in (("datasets/good/versions/1", good), ("datasets/bad/versions/2", bad)):
        payload = job_for(store, source, version).SerializeToString()
        await js.publish(names.dataset_jobs_subject, payload, headers={"Nats-Msg-Id": f"{version}:1"})
    await js.publish(names.dataset_jobs_subject, b"\xff not a job")

    stopping = asyncio.Event()
    services = PreparationServices(
        store=store,
        publisher_for=lambda v, a: DatasetEventPublisher(js, names, v, a, progress_every_seconds=0.0),
        worker_id="w-test",
        ack_wait=30.0,
        retry=DEFAULT_RETRY,
        stopping=stopping,
    )
    settled = asyncio.Event()
    outcomes: list[str] = []

    async def handle(msg: JobMessage) -> Settlement:
        outcome = await prepare_job(msg, services)
        outcomes.append(outcome)
        if len(outcomes) == 3:
            settled.set()
        return outcome

    worker = DatasetWorker(queue=queue, handle=handle, stopping=stopping, fetch_timeout=0.2)
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(120):
            await settled.wait()
    finally:
        await worker.shutdown()
        await running
    await queue.close()
    assert sorted(worker.settlements) == ["ack", "ack", "term"]

    events = await events_of(js, names)
    by_version: dict[str, list[datasets_pb2.DatasetVersionEvent]] = {}
    for e in events:
        by_version.setdefault(e.dataset_version, []).append(e)
    good_events = by_version["datasets/good/versions/1"]
    kinds = [e.WhichOneof("payload") for e in good_events]
    assert kinds[0] == "started" and kinds[-1] == "completed" and "progress" in kinds
    steps = {e.progress.progress.step for e in good_events if e.HasField("progress")}
    assert datasets_pb2.DATASET_PREPARATION_STEP_VALIDATING in steps
    result = good_events[-1].completed
    assert result.problem_count == 0 and not result.problems
    assert result.profile.images == 30 and result.profile.annotations == 30
    assert [b.label for b in result.profile.box_sizes] == ["<8", "8-16", "16-32", "32-64", "64-128", ">128"]
    assert result.split.origin == datasets_pb2.SPLIT_ORIGIN_COMPUTED and result.split.group_key == "sequence"
    assert sum(s.images for s in result.split.splits) == 30
    assert any(g.exact for g in result.near_duplicate_groups)  # flights/1/0.jpg is a copy of flights/0/0.jpg
    assert all(g.resolved_split for g in result.near_duplicate_groups)
    manifest = result.split_manifest
    assert manifest.kind == types_pb2.SPLIT_MANIFEST and store.sha256(manifest.uri) == manifest.sha256

    bad_result = by_version["datasets/bad/versions/2"][-1].completed
    assert bad_result.problem_count == 2 and not bad_result.HasField("profile")
    assert [p.file for p in bad_result.problems] == ["flights/2/1.jpg", "flights/3/0.jpg"]
    assert "is empty (0 bytes)" in bad_result.problems[0].description
    assert "is truncated or corrupt" in bad_result.problems[1].description

    info = await js.consumer_info(names.jobs, DATASET_WORKER_CONSUMER)
    assert info.num_pending == 0 and info.num_ack_pending == 0
