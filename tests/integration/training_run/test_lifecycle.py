"""Queueing through the outbox, leases and the reaper, cancel, worker events, logs, watch with resume."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from sqlalchemy import update

from common.auth import USER_PERMISSIONS, Permission
from common.proto.raven.v1 import events_pb2, types_pb2
from common.proto.raven.v1 import training_run_pb2 as pb
from services.training_run.adapters.orm import OutboxRow
from tests.helpers import bearer, token
from tests.integration.training_run.conftest import AppFactory, Harness, pull_jobs
from tests.integration.training_run.datasets_support import preparing_worker

SHORT_LEASES = {"lease_seconds": 0.6, "heartbeat_seconds": 0.2, "reaper_interval_seconds": 0.1}


def run_id(name: str) -> str:
    return name.split("/", 1)[1]


async def test_outbox_relay_after_crash_between_commit_and_publish(make_harness: AppFactory) -> None:
    crashed = await make_harness(start_relay=False)
    run = await crashed.create()
    assert await pull_jobs(crashed.nc, crashed.names, expect=0, timeout=0.5) == []
    await crashed.app.close()  # the process dies with the outbox row committed and unsent
    restarted = await make_harness()
    async with preparing_worker(restarted, "w-restarted"):  # the run waits for its dataset version
        jobs = await pull_jobs(restarted.nc, restarted.names, expect=1, timeout=30)
    assert [(j.run_id, j.attempt) for j in jobs] == [(run_id(run.name), 1)]
    # A relay that published but died before marking the row sent publishes again: the stream drops
    # the duplicate.
    async with restarted.app.service._uow() as uow:
        await uow.session.execute(update(OutboxRow.__table__).values(sent_time=None))
        await uow.session.commit()
    assert await restarted.app.relay.publish_pending() >= 1
    assert await pull_jobs(restarted.nc, restarted.names, expect=0, timeout=0.5) == []


async def test_lease_expiry_requeues_then_fails_after_max_attempts(
    make_harness: AppFactory, database_url: str
) -> None:
    h = await make_harness(database_url, settings=SHORT_LEASES)
    run = await h.create(hyperparameters=types_pb2.Hyperparameters(epochs=2, max_attempts=2))
    claim = await h.claim(run.name, "w1", 1)
    assert (
        claim.attempt == 1
        and claim.heartbeat_interval.ToMilliseconds() == 200
        and not claim.resume_checkpoint
    )
    beat = await h.stub.HeartbeatTrainingRun(
        pb.HeartbeatTrainingRunRequest(
            name=run.name, worker_id="w1", attempt=1, latest_checkpoint="runs/x/epoch_1.pth"
        ),
        metadata=h.worker,
    )
    assert not beat.cancel_requested
    requeued = await h.wait_for(run.name, lambda r: r.attempt == 2)
    assert requeued.state == types_pb2.PENDING
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # the lost worker is fenced off
        await h.stub.HeartbeatTrainingRun(
            pb.HeartbeatTrainingRunRequest(name=run.name, worker_id="w1", attempt=1), metadata=h.worker
        )
    assert caught.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # a redelivered old job
        await h.claim(run.name, "w2", 1)
    assert caught.value.code() == grpc.StatusCode.ABORTED
    second = await h.claim(run.name, "w2", 2)
    assert second.resume_checkpoint == "runs/x/epoch_1.pth"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.claim(run.name, "w3", 2)
    assert caught.value.code() == grpc.StatusCode.ABORTED
    failed = await h.wait_for(run.name, lambda r: r.state == types_pb2.FAILED)
    assert failed.failure.kind == types_pb2.WORKER_LOST and "max_attempts" in failed.failure.message
    jobs = await pull_jobs(h.nc, h.names, expect=2)
    assert sorted(j.attempt for j in jobs) == [1, 2]


async def test_release_requeues_at_once_without_counting_a_failure(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    run = await h.create(hyperparameters=types_pb2.Hyperparameters(epochs=2, max_attempts=1))
    await h.claim(run.name)
    await h.stub.ReleaseTrainingRun(
        pb.ReleaseTrainingRunRequest(
            name=run.name, worker_id="w1", attempt=1, reason="SIGTERM", latest_checkpoint="c/1.pth"
        ),
        metadata=h.worker,
    )
    after = await h.get(run.name)
    assert (after.state, after.attempt) == (types_pb2.PENDING, 2)
    assert (await h.claim(run.name, "w2", 2)).resume_checkpoint == "c/1.pth"
    assert sorted(j.attempt for j in await pull_jobs(h.nc, h.names, expect=2)) == [1, 2]


async def test_cancel_pending_and_running(harness: Harness) -> None:
    h = harness
    pending = await h.create()
    cancelled = await h.stub.CancelTrainingRun(
        pb.CancelTrainingRunRequest(name=pending.name), metadata=h.user
    )
    assert cancelled.state == types_pb2.CANCELLED
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # the worker pulling its job is refused
        await h.claim(pending.name)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    running = await h.create()
    rid = run_id(running.name)
    controls: asyncio.Queue[events_pb2.RunControl] = asyncio.Queue()

    async def on_control(msg: object) -> None:
        await controls.put(events_pb2.RunControl.FromString(msg.data))  # type: ignore[attr-defined]

    subscription = await h.nc.subscribe(h.names.run_control_subject(rid), cb=on_control)
    await h.claim(running.name)
    cancelling = await h.stub.CancelTrainingRun(
        pb.CancelTrainingRunRequest(name=running.name, reason="wrong data"), metadata=h.user
    )
    assert cancelling.state == types_pb2.CANCELLING
    control = await asyncio.wait_for(controls.get(), 5)
    assert control.cancel and control.run_id == rid and control.attempt == 1
    beat = await h.stub.HeartbeatTrainingRun(
        pb.HeartbeatTrainingRunRequest(name=running.name, worker_id="w1", attempt=1), metadata=h.worker
    )
    assert beat.cancel_requested
    await h.publish_event(rid, 1, cancelled=events_pb2.RunCancelled(reason="stopped at iter 7"))
    done = await h.wait_for(running.name, lambda r: r.state == types_pb2.CANCELLED)
    assert [t.to_state for t in done.transitions][-2:] == [types_pb2.CANCELLING, types_pb2.CANCELLED]
    await subscription.unsubscribe()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.stub.CancelTrainingRun(pb.CancelTrainingRunRequest(name=running.name), metadata=h.user)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def watch(
    h: Harness, name: str, token: str, out: list[pb.WatchTrainingRunResponse], stop_after: int = 0
) -> None:
    call = h.stub.WatchTrainingRun(pb.WatchTrainingRunRequest(name=name, resume_token=token), metadata=h.user)
    async for response in call:
        out.append(response)
        if stop_after and len(out) >= stop_after:
            call.cancel()
            return


async def test_events_logs_and_watch_with_resume_lose_nothing(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    run = await h.create()
    rid = run_id(run.name)
    await h.claim(run.name)
    first: list[pb.WatchTrainingRunResponse] = []
    watcher = asyncio.create_task(watch(h, run.name, "", first, stop_after=4))
    await h.publish_event(rid, 1, started=events_pb2.RunStarted(worker_id="w1", device="cpu"))
    await h.publish_event(rid, 1, phase_changed=events_pb2.PhaseChanged(phase=types_pb2.TRAINING))
    await asyncio.wait_for(
        watcher, 10
    )  # created + running state changes, started, phase: then it disconnects
    for i in range(3):
        await h.publish_event(
            rid,
            1,
            progress=events_pb2.ProgressReported(
                progress=types_pb2.ProgressSnapshot(
                    phase=types_pb2.TRAINING, epoch=1, iter=i + 1, max_iters=3
                )
            ),
        )
    await h.publish_event(rid, 1, log=events_pb2.LogLines(lines=["epoch 1 iter 1", "epoch 1 iter 2"]))
    await h.publish_event(rid, 7, failed=events_pb2.RunFailed())  # a stale attempt: ignored
    await h.publish_event(rid, 1, completed=events_pb2.RunCompleted())
    await h.publish_event(rid, 1, model_registered=events_pb2.ModelRegistered(trained_model_id="m-1"))
    second: list[pb.WatchTrainingRunResponse] = []
    await asyncio.wait_for(watch(h, run.name, first[-1].resume_token, second), 10)
    seen = [r.event.sequence for r in first + second]
    assert seen == sorted(set(seen)), "no duplicates, in order"
    assert len(second) >= 8 and second[-1].event.state_changed.to_state == types_pb2.SUCCEEDED
    kinds = [r.event.WhichOneof("payload") for r in second]
    assert kinds.count("progress") == 3 and "failed" in kinds and "model_registered" in kinds
    assert second[-1].training_run.state == types_pb2.SUCCEEDED
    stored = await h.get(run.name)
    assert stored.state == types_pb2.SUCCEEDED and stored.trained_model == "trainedModels/m-1"
    assert stored.progress.iter == 3
    logs = await h.stub.GetTrainingRunLogs(
        pb.GetTrainingRunLogsRequest(name=run.name, page_size=1), metadata=h.user
    )
    assert list(logs.lines) == ["epoch 1 iter 1"] and logs.next_page_token and not logs.complete
    rest = await h.stub.GetTrainingRunLogs(
        pb.GetTrainingRunLogsRequest(name=run.name, page_token=logs.next_page_token), metadata=h.user
    )
    assert list(rest.lines) == ["epoch 1 iter 2"] and rest.complete
    # A watcher that already saw the terminal event ends at once; one from the start replays everything.
    late: list[pb.WatchTrainingRunResponse] = []
    await asyncio.wait_for(watch(h, run.name, second[-1].resume_token, late), 5)
    assert late == []
    replay: list[pb.WatchTrainingRunResponse] = []
    await asyncio.wait_for(watch(h, run.name, "", replay), 5)
    assert [r.event.sequence for r in replay] == seen


async def test_bad_input_never_answers_internal(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    calls = [
        (h.stub.GetTrainingRun, pb.GetTrainingRunRequest(name="nope"), h.user),
        (h.stub.GetTrainingRun, pb.GetTrainingRunRequest(name="trainingRuns/../../x"), h.user),
        (h.stub.GetTrainingRun, pb.GetTrainingRunRequest(name="trainingRuns/doesnotexist"), h.user),
        (h.stub.ListTrainingRuns, pb.ListTrainingRunsRequest(page_size=-1), h.user),
        (h.stub.ListTrainingRuns, pb.ListTrainingRunsRequest(states=[99]), h.user),
        (h.stub.UpdateTrainingRun, pb.UpdateTrainingRunRequest(), h.user),
        (h.stub.DeleteTrainingRun, pb.DeleteTrainingRunRequest(name=""), h.user),
        (h.stub.CancelTrainingRun, pb.CancelTrainingRunRequest(name="trainingRuns/"), h.user),
        (h.stub.GetTrainingRunLogs, pb.GetTrainingRunLogsRequest(name="x", page_size=-5), h.user),
        (
            h.stub.GetTrainingRunLogs,
            pb.GetTrainingRunLogsRequest(name="trainingRuns/abc", page_token="%%%"),
            h.user,
        ),
        (h.stub.CreateTrainingRun, pb.CreateTrainingRunRequest(), h.user),
        (h.stub.ClaimTrainingRun, pb.ClaimTrainingRunRequest(name="trainingRuns/abc"), h.worker),
        (
            h.stub.ClaimTrainingRun,
            pb.ClaimTrainingRunRequest(name="trainingRuns/abc", worker_id="w", job_attempt=1),
            h.worker,
        ),
        (h.stub.HeartbeatTrainingRun, pb.HeartbeatTrainingRunRequest(name="bad"), h.worker),
        (
            h.stub.HeartbeatTrainingRun,
            pb.HeartbeatTrainingRunRequest(
                name="trainingRuns/abc", worker_id="w", attempt=1, latest_checkpoint="/etc/passwd"
            ),
            h.worker,
        ),
        (
            h.stub.ReleaseTrainingRun,
            pb.ReleaseTrainingRunRequest(name="trainingRuns/abc", attempt=0),
            h.worker,
        ),
    ]
    for method, request, metadata in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await method(request, metadata=metadata)
        assert caught.value.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (
            request,
            caught.value,
        )
        assert caught.value.details(), request
    for request in (
        pb.WatchTrainingRunRequest(name="bad"),
        pb.WatchTrainingRunRequest(name="trainingRuns/abc", resume_token="x"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in h.stub.WatchTrainingRun(request, metadata=h.user):
                pass
        assert caught.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


async def test_watch_training_runs_streams_visible_state_and_phase_changes(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    bob = bearer(token("bob", USER_PERMISSIONS - {Permission.VIEW_ALL_TRAINING_RUNS}))
    received: list[pb.WatchTrainingRunsResponse] = []
    three_received = asyncio.Event()
    call = h.stub.WatchTrainingRuns(pb.WatchTrainingRunsRequest(), metadata=bob)

    async def collect() -> None:
        async for response in call:
            received.append(response)
            if len(received) >= 3:
                three_received.set()

    task = asyncio.create_task(collect())
    await asyncio.sleep(0.5)  # the dashboard subscription is set up
    await h.create()  # alice's: invisible to bob
    mine = await h.create(metadata=bob)
    await h.claim(mine.name)
    await h.publish_event(
        run_id(mine.name), 1, phase_changed=events_pb2.PhaseChanged(phase=types_pb2.TRAINING)
    )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(three_received.wait(), 10)
    call.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # Let the server finish the cancelled stream before the harness shuts it down.
    for _ in range(100):
        if h.app.changes.watchers == 0:
            break
        await asyncio.sleep(0.05)
    assert {r.training_run.name for r in received} == {mine.name}
    changes = {(r.previous_state, r.training_run.state) for r in received}
    assert {
        (types_pb2.RUN_STATE_UNSPECIFIED, types_pb2.PENDING),
        (types_pb2.PENDING, types_pb2.RUNNING),
    } <= changes
    phase = [r for r in received if r.previous_state == r.training_run.state == types_pb2.RUNNING]
    assert phase and phase[0].training_run.progress.phase == types_pb2.TRAINING


async def test_resume_token_beyond_the_stream_is_refused(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    run = await h.create()  # not terminal: a watcher with a made-up token would otherwise wait forever
    call = h.stub.WatchTrainingRun(
        pb.WatchTrainingRunRequest(name=run.name, resume_token="99999999999999"), metadata=h.user
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ahead of the event stream" in caught.value.details()
