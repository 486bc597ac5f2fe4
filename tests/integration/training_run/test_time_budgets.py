"""Issue 17: time budgets and preemption on the real training_run server (SQLite and PostgreSQL, real
JetStream): a run past max_pending ends FAILED by the reaper with its reason; budgets are validated, stored,
shown and handed to the worker at the claim with the runtime used; a completion at the time budget is
recorded; a release is recorded as a preemption on the attempt.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import grpc
import pytest

from common.proto.raven.v1 import events_pb2, types_pb2
from common.proto.raven.v1 import training_run_pb2 as pb
from tests.integration.training_run.conftest import AppFactory, Harness
from tests.integration.training_run.test_discovery_cli import logs_to_stderr, ravenctl

__all__ = ["logs_to_stderr"]  # the fixture, imported for the tests here
# (Harness.create sets message fields with setattr: protobuf takes a timedelta for a Duration field.)
FAST_REAPER = {"reaper_interval_seconds": 0.1}


async def test_a_run_no_worker_takes_within_max_pending_fails_with_the_reason(
    make_harness: AppFactory, database_url: str
) -> None:
    h = await make_harness(database_url, settings=FAST_REAPER)
    waiting = await h.create(max_pending=timedelta(seconds=1))
    patient = await h.create()  # no budget: waits
    failed = await h.wait_for(waiting.name, lambda r: r.state == types_pb2.FAILED, timeout=15)
    assert failed.failure.kind == types_pb2.TIMED_OUT
    assert "no worker took the run within its max_pending of 1s" in failed.failure.message
    assert failed.max_pending.seconds == 1 and failed.transitions[-1].to_state == types_pb2.FAILED
    assert (await h.get(patient.name)).state == types_pb2.PENDING
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # its job, if a worker pulls it now, is refused
        await h.claim(waiting.name)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_claimed_run_is_not_failed_by_max_pending_and_a_release_is_a_preemption(
    make_harness: AppFactory, database_url: str
) -> None:
    h = await make_harness(database_url, settings=FAST_REAPER)
    run = await h.create(max_pending=timedelta(seconds=5), max_runtime=timedelta(seconds=600))
    claimed = await h.claim(run.name)
    assert claimed.training_run.max_runtime.seconds == 600
    assert claimed.training_run.runtime_used.ToTimedelta().total_seconds() == 0  # queue time not counted
    await h.stub.ReleaseTrainingRun(
        pb.ReleaseTrainingRunRequest(
            name=run.name, worker_id="w1", attempt=1, reason="worker shutting down",
            latest_checkpoint=f"runs/{run.name.split('/')[1]}/checkpoints/attempt-1/iter_3.pth",
        ),
        metadata=h.worker,
    )  # fmt: skip
    again = await h.get(run.name)
    assert again.state == types_pb2.PENDING and again.attempt == 2
    first = again.attempts[0]
    assert first.preempted and first.end_reason == "preempted: released by w1: worker shutting down"
    assert not again.attempts[1].preempted
    second = await h.claim(run.name, "w2", attempt=2)
    used = second.training_run.runtime_used.ToTimedelta().total_seconds()
    assert 0 < used < 30  # attempt 1's time RUNNING, none of the queue time
    await asyncio.sleep(5.5)  # past max_pending since the requeue: a RUNNING run is not the reaper's
    assert (await h.get(run.name)).state == types_pb2.RUNNING


async def test_completion_at_the_time_budget_is_recorded_and_shown(
    logs_to_stderr: None, harness: Harness
) -> None:
    h = harness
    run = await h.create(max_runtime=timedelta(seconds=5))
    rid = run.name.split("/")[1]
    await h.claim(run.name)
    await h.publish_event(rid, 1, started=events_pb2.RunStarted(worker_id="w1", device="cpu"))
    await h.publish_event(rid, 1, completed=events_pb2.RunCompleted(stopped_by_time_budget=True))
    await h.wait_for(run.name, lambda r: r.progress.phase == types_pb2.UPLOADING)
    await h.publish_event(rid, 1, model_registered=events_pb2.ModelRegistered(trained_model_id=f"m-{rid}"))
    done = await h.wait_for(run.name, lambda r: r.state == types_pb2.SUCCEEDED)
    assert done.stopped_by_time_budget and not done.stopped_early
    shown = await ravenctl(h, "runs", "get", run.name)
    assert shown.exit_code == 0, shown.output
    assert "stopped by time budget" in shown.stdout and "max_runtime 5s" in shown.stdout


async def test_ravenctl_create_sends_the_budgets_and_create_validates_them(
    logs_to_stderr: None, harness: Harness
) -> None:
    h = harness
    base = [
        "-o",
        "json",
        "runs",
        "create",
        "--dataset",
        h.dataset,
        "--template",
        "rtmdet_tiny",
        "--name",
        "b",
    ]
    made = await ravenctl(h, *base, "--max-runtime", "1h30m", "--max-pending", "90")
    assert made.exit_code == 0, made.output
    stored = await h.get(json.loads(made.stdout)["name"])
    assert stored.max_runtime.seconds == 5400 and stored.max_pending.seconds == 90
    assert not (await h.get((await h.create()).name)).HasField("max_runtime")

    bad = await ravenctl(h, *base, "--max-runtime", "0.5s", "--max-pending", "31d")
    assert bad.exit_code == 2 and "INVALID_ARGUMENT" in bad.stderr
    assert "training_run.max_runtime" in bad.stderr and "got 0.5s" in bad.stderr
    assert "training_run.max_pending" in bad.stderr and "got 31d" in bad.stderr
    typo = await ravenctl(h, *base, "--max-runtime", "5 minutes")
    assert typo.exit_code != 0 and "--max-runtime" in typo.output and "is not a duration" in typo.output
