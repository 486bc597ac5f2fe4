"""Job intake through a real nats-server and a real gRPC lease server: claim, outcome events, ack/nak/term."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from common.artifacts import ArtifactStore
from common.nats_streams import StreamNames
from common.proto.raven.v1 import dead_letters_pb2, events_pb2, types_pb2
from common.settings import Settings
from services.trainer_worker.domain.job import Settlement
from tests.fixtures.synthetic_coco import make_dataset
from tests.helpers import worker_token
from tests.integration.trainer_worker.test_worker_harness import (
    FakeRun,
    Harness,
    QuickSteps,
    eventually,
    start_lease_server,
    start_worker,
)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def env(tmp_path: Path, nats_url: str, unique: str) -> AsyncIterator[dict[str, object]]:
    server, servicer = await start_lease_server()
    datasets = tmp_path / "datasets"
    make_dataset(datasets / "good", n_images=12, size=128)
    bad = make_dataset(datasets / "bad", n_images=6, size=128)
    doc = json.loads((bad / "annotations.json").read_text())
    doc["annotations"][0]["image_id"] = 999  # points at an unknown image
    (bad / "annotations.json").write_text(json.dumps(doc))
    settings = Settings(
        data_dir=tmp_path / "data",
        nats_url=nats_url,
        worker_token=worker_token(),
        training_run_addr=f"127.0.0.1:{server.port}",
        dataset_root=f"file://{datasets}",
        jobs_stream=f"JOBS_{unique}",
        events_stream=f"EVENTS_{unique}",
        subject_prefix=f"t{unique}",
        worker_id=f"worker-{unique}",
        worker_slots=1,
        device="cpu",
        progress_every_iters=1,
        progress_every_seconds=0.0,
    )
    names = StreamNames.from_settings(settings)
    harnesses: list[Harness] = []
    yield {"settings": settings, "names": names, "servicer": servicer, "harnesses": harnesses}
    for h in harnesses:
        if not h.task.done():
            await h.app.worker.shutdown()
        await asyncio.wait_for(h.task, 30)
    if harnesses:
        js = harnesses[0].js
        for stream in (names.jobs, names.events):
            await js.delete_stream(stream)
    for h in harnesses:
        await h.app.close()
    await server.stop(0)


async def worker(env: dict[str, object], **step_options: object) -> Harness:
    settings = env["settings"]
    assert isinstance(settings, Settings)
    steps = QuickSteps(
        artifacts=ArtifactStore(settings.artifact_root), dataset_root=settings.dataset_root, **step_options
    )  # type: ignore[arg-type]
    h = await start_worker(settings, env["names"], env["servicer"], steps)  # type: ignore[arg-type]
    env["harnesses"].append(h)  # type: ignore[attr-defined]
    return h


def settled(h: Harness, n: int):  # type: ignore[no-untyped-def]
    return lambda: len(h.app.worker.settlements) >= n


async def test_job_is_claimed_trained_uploaded_and_acked_after_completed_event(
    env: dict[str, object],
) -> None:
    h = await worker(env)
    await h.publish_job("run-ok", "good")
    await eventually(settled(h, 1), what="job settled")

    assert h.app.worker.settlements == [Settlement.ACK]
    kinds = await h.kinds("run-ok")
    assert kinds[0] == "started" and kinds[-1] == "completed"
    phases = [e.phase_changed.phase for e in await h.events("run-ok") if e.HasField("phase_changed")]
    assert phases == [
        types_pb2.PREPARING_DATASET,
        types_pb2.TRAINING,
        types_pb2.EVALUATING,
        types_pb2.UPLOADING,
    ]
    assert kinds.count("progress") == 3 and "log" in kinds
    completed = (await h.events("run-ok"))[-1].completed
    assert completed.dataset_snapshot_sha256 and completed.config_sha256 == "c0ffee"
    assert list(completed.class_names) == ["bottle", "tire", "bag"]
    assert completed.display_name == "test run" and completed.owner == "alice" and completed.versions.torch
    assert completed.config.fields["model"].struct_value.fields["type"].string_value == "Fake"  # job's config
    assert completed.config_text == "model = dict(type='Fake')\n"
    assert completed.evaluation.val.bbox_map == 0.5 and completed.evaluation.best_epoch == 1
    assert [c.class_name for c in completed.evaluation.val.per_class_ap] == ["bottle", "tire", "bag"]
    assert completed.average_loss == pytest.approx(1 / 3) and completed.epochs == 3
    store = ArtifactStore(h.settings.artifact_root)
    kinds_stored = {a.kind for a in completed.artifacts}
    assert {
        types_pb2.CHECKPOINT,
        types_pb2.CONFIG,
        types_pb2.METRICS,
        types_pb2.LOG,
        types_pb2.SPLIT_MANIFEST,
    } <= kinds_stored
    for artifact in completed.artifacts:
        assert store.sha256(artifact.uri) == artifact.sha256
        assert store.size(artifact.uri) == artifact.size_bytes
    assert store.list("runs/run-ok/checkpoints") == []  # resume checkpoints dropped after success
    assert await h.jobs_left() == 0
    run = h.servicer.runs["run-ok"]
    assert run.claims == [1] and run.worker_id == h.settings.worker_id
    assert not (Path(h.settings.work_dir) / "run-ok").exists()  # scratch removed


async def test_refused_claim_terminates_message_and_worker_takes_next_job(env: dict[str, object]) -> None:
    h = await worker(env)
    env["servicer"].runs["run-cancelled"] = FakeRun(status="CANCELLED")  # type: ignore[attr-defined]
    await h.publish_job("run-cancelled", "good")
    await h.publish_job("run-next", "good")
    await eventually(settled(h, 2), what="both jobs settled")

    assert h.app.worker.settlements == [Settlement.TERM, Settlement.ACK]
    assert await h.kinds("run-cancelled") == []
    assert (await h.kinds("run-next"))[-1] == "completed"
    assert await h.jobs_left() == 0


async def test_invalid_dataset_fails_with_details_and_worker_takes_next_job(env: dict[str, object]) -> None:
    h = await worker(env)
    await h.publish_job("run-bad", "bad")
    await h.publish_job("run-after-bad", "good")
    await eventually(settled(h, 2), what="both jobs settled")

    events = await h.events("run-bad")
    assert events[-1].WhichOneof("payload") == "failed"
    failure = events[-1].failed.failure
    assert failure.kind == types_pb2.INVALID_DATASET
    assert "unknown image" in failure.message
    assert any("999" in d for d in failure.details)
    assert (await h.kinds("run-after-bad"))[-1] == "completed"
    assert h.app.worker.settlements == [Settlement.ACK, Settlement.ACK]
    assert await h.jobs_left() == 0


async def test_missing_dataset_fails_the_run_not_the_worker(env: dict[str, object]) -> None:
    h = await worker(env)
    await h.publish_job("run-nodata", "does/not/exist")
    await eventually(settled(h, 1), what="job settled")
    failure = (await h.events("run-nodata"))[-1].failed.failure
    assert failure.kind in (types_pb2.INVALID_DATASET, types_pb2.INTERNAL_ERROR) and failure.message
    assert not h.task.done()


async def test_cancel_requested_by_heartbeat_publishes_cancelled_with_last_checkpoint(
    env: dict[str, object],
) -> None:
    h = await worker(env, epochs=200, epoch_seconds=0.1)
    await h.publish_job("run-cancel-hb", "good")
    run = h.servicer.runs["run-cancel-hb"]
    await eventually(lambda: run.latest_checkpoint, what="a checkpoint reported by heartbeat")
    run.status = "CANCELLING"
    await eventually(settled(h, 1), what="job settled")

    event = (await h.events("run-cancel-hb"))[-1]
    assert event.WhichOneof("payload") == "cancelled"
    assert event.cancelled.last_checkpoint.startswith("runs/run-cancel-hb/checkpoints/")
    assert ArtifactStore(h.settings.artifact_root).exists(event.cancelled.last_checkpoint)
    assert h.app.worker.settlements == [Settlement.ACK]
    assert await h.jobs_left() == 0


async def test_cancel_by_control_message_publishes_cancelled(env: dict[str, object]) -> None:
    h = await worker(env, epochs=200, epoch_seconds=0.1)
    await h.publish_job("run-cancel-ctl", "good")
    await eventually(lambda: _has(h, "run-cancel-ctl", "progress"), what="training progress")
    control = events_pb2.RunControl(run_id="run-cancel-ctl", attempt=1, cancel=True, reason="user asked")
    await h.app.nc.publish(h.names.run_control_subject("run-cancel-ctl"), control.SerializeToString())
    await eventually(settled(h, 1), what="job settled")

    event = (await h.events("run-cancel-ctl"))[-1]
    assert event.WhichOneof("payload") == "cancelled" and event.cancelled.reason == "user asked"
    assert h.app.worker.settlements == [Settlement.ACK]


async def test_lost_lease_stops_work_without_outcome_and_naks(env: dict[str, object]) -> None:
    h = await worker(env, epochs=200, epoch_seconds=0.1)
    await h.publish_job("run-lost", "good")
    run = h.servicer.runs["run-lost"]
    await eventually(lambda: run.heartbeats >= 1, what="a heartbeat")
    run.lose_lease = True
    await eventually(settled(h, 1), what="job settled")

    assert h.app.worker.settlements == [Settlement.NAK]
    assert not {"completed", "failed", "cancelled"} & set(await h.kinds("run-lost"))
    assert not h.task.done()  # the worker goes on


async def test_shutdown_releases_lease_with_checkpoint_and_next_worker_resumes(
    env: dict[str, object],
) -> None:
    h = await worker(env, epochs=200, epoch_seconds=0.1)
    await h.publish_job("run-moved", "good")
    run = h.servicer.runs["run-moved"]
    await eventually(lambda: run.latest_checkpoint, what="a checkpoint reported by heartbeat")

    await h.app.worker.shutdown()  # what SIGTERM calls
    await asyncio.wait_for(h.task, 20)

    assert h.app.worker.settlements == [Settlement.NAK]
    assert len(run.releases) == 1
    reason, checkpoint = run.releases[0]
    assert "shutting down" in reason and checkpoint.startswith("runs/run-moved/checkpoints/attempt-1/")
    assert ArtifactStore(h.settings.artifact_root).exists(checkpoint)
    assert not {"completed", "failed", "cancelled"} & set(await h.kinds("run-moved"))
    assert run.attempt == 2 and run.status == "PENDING"  # released: requeued as attempt 2 (a new job)
    assert await h.jobs_left() == 2  # the old job handed back (nak), the attempt-2 job queued

    env["settings"] = env["settings"].model_copy(update={"worker_slots": 2})  # type: ignore[attr-defined]
    successor = await worker(env, epochs=200, epoch_seconds=0.1)  # slot 1 resumes, slot 2 meets the stale job
    await eventually(lambda: run.status == "RUNNING", what="the successor's claim")
    await eventually(settled(successor, 1), what="the stale attempt-1 job terminated")
    assert successor.app.worker.settlements == [Settlement.TERM]
    assert run.claims == [1, 1, 2] or run.claims == [1, 2, 1]
    started = [e for e in await h.events("run-moved") if e.HasField("started")]
    assert started[-1].attempt == 2 and started[-1].started.resumed
    assert started[-1].started.resumed_from == checkpoint
    await eventually(lambda: successor.steps.resumed_from.get("run-moved") is not None, what="resume")
    resumed = successor.steps.resumed_from["run-moved"]
    assert resumed is not None and resumed.read_text().startswith("epoch ")


async def _has(h: Harness, run_id: str, kind: str) -> bool:
    return kind in await h.kinds(run_id)


async def test_one_job_per_free_slot(env: dict[str, object]) -> None:
    env["settings"] = env["settings"].model_copy(update={"worker_slots": 2})  # type: ignore[attr-defined]
    h = await worker(env, epochs=200, epoch_seconds=0.1)
    for run_id in ("run-slot-a", "run-slot-b", "run-slot-c"):
        await h.publish_job(run_id, "good")
    runs = h.servicer.runs
    await eventually(lambda: runs["run-slot-a"].claims and runs["run-slot-b"].claims, what="two claims")
    await asyncio.sleep(0.5)
    assert not runs["run-slot-c"].claims  # no third slot
    runs["run-slot-a"].status = "CANCELLING"
    await eventually(lambda: runs["run-slot-c"].claims, what="the third job in the freed slot")
    assert h.app.worker.settlements == [Settlement.ACK]


async def dead_letters(h: Harness, count: int) -> list[dead_letters_pb2.DeadLetter]:
    js = h.app.nc.jetstream()
    stream = h.names.dead_letters_stream

    async def stored() -> bool:
        return (await js.stream_info(stream)).state.messages >= count

    await eventually(stored, what=f"{count} dead letters")
    return [
        dead_letters_pb2.DeadLetter.FromString((await js.get_msg(stream, n)).data)
        for n in range(1, count + 1)
    ]


async def test_a_job_whose_claim_always_fails_is_dead_lettered_after_max_deliver(
    env: dict[str, object],
) -> None:
    settings = env["settings"]
    assert isinstance(settings, Settings)
    env["settings"] = settings.model_copy(update={"worker_max_deliver": 3, "retry_backoff_seconds": [0.05]})
    h = await worker(env)
    env["servicer"].runs["run-poison"] = FakeRun(claim_error=True)  # type: ignore[attr-defined]
    await h.publish_job("run-poison", "good")
    await eventually(settled(h, 3), what="three deliveries settled")

    assert h.app.worker.settlements == [Settlement.NAK, Settlement.NAK, Settlement.TERM]
    assert env["servicer"].runs["run-poison"].claims == [1, 1, 1]  # type: ignore[attr-defined]
    (record,) = await dead_letters(h, 1)
    assert (record.consumer, record.reason, record.deliveries) == ("trainer-workers", "handler_failed", 3)
    assert (record.run_id, record.attempt) == ("run-poison", 1)
    assert "INTERNAL" in record.error and "claim fails every time" in record.error
    assert await h.jobs_left() == 0
    await asyncio.sleep(0.5)
    assert len(h.app.worker.settlements) == 3  # never delivered again


async def test_an_unreadable_job_is_dead_lettered_at_once(env: dict[str, object]) -> None:
    h = await worker(env)
    js = h.app.nc.jetstream()
    await js.publish(h.names.jobs_subject, b"\x08\xff\xff not a job", headers={"Nats-Msg-Id": "run-x:2"})
    await eventually(settled(h, 1), what="the job settled")

    assert h.app.worker.settlements == [Settlement.TERM]
    (record,) = await dead_letters(h, 1)
    assert (record.reason, record.deliveries, record.run_id, record.attempt) == ("undecodable", 1, "run-x", 2)
    assert "TrainingJob" in record.error
