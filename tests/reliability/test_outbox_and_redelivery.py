"""Crash between commit and publish, and duplicate / out-of-order deliveries.

Commit/publish: nats-server is down when the run is created, so the relay cannot publish the job; training_run
is then SIGKILLed with the job row committed but unsent (checked in its outbox table). After both restart,
the outbox relay dispatches the run and it completes. While it runs, a duplicate of its job (new Nats-Msg-Id)
reaches the idle second worker, whose claim is refused: the job is terminated, the run is not disturbed.

Redelivery: on a SUCCEEDED run, every stored progress/phase/started event is re-published in reverse order,
the completion twice (no Nats-Msg-Id, a new one, a later attempt), forged late failed/cancelled/registered
events, and the run's job again. Exactly one model, and the stored run does not change at all (same etag).
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import nats
import pytest

from common.nats_streams import WORKER_CONSUMER, StreamNames
from common.proto.raven.v1 import events_pb2, types_pb2
from scripts.stack import Stack
from tests.reliability import harness
from tests.reliability.harness import kind

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

RUNS = harness.runs_per_scenario(1)
NAMES = StreamNames()
EVENT_CONSUMERS = ("training-run-tracker", "trained-model-registrar")


async def _publish(js, subject: str, payload: bytes, msg_id: str | None = None) -> None:  # type: ignore[no-untyped-def]
    await js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id} if msg_id else None)


async def _drained(js) -> bool:  # type: ignore[no-untyped-def]
    """Every consumer has delivered and settled everything (the injected messages were handled)."""
    infos = [await js.consumer_info(NAMES.events, name) for name in EVENT_CONSUMERS]
    infos.append(await js.consumer_info(NAMES.jobs, WORKER_CONSUMER))
    return all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos)


@pytest.mark.parametrize("index", range(RUNS))
async def test_crash_between_commit_and_publish_still_dispatches(stack: Stack, index: int) -> None:
    started = time.monotonic()
    async with harness.client_for(stack) as client:
        await harness.version_ready(client)
    await asyncio.to_thread(stack.kill, "nats", signal.SIGKILL)
    try:
        async with harness.client_for(stack) as client:
            run = await harness.create(client, "outbox", epochs=1)
            rid = harness.run_id(run.name)
            await asyncio.sleep(2)  # the relay tries, and cannot publish
            unsent = harness.outbox_rows(stack, rid)
            await asyncio.to_thread(
                stack.kill, "training_run", signal.SIGKILL
            )  # crash: committed, unpublished
    finally:
        await asyncio.to_thread(stack.start_process, "nats")
    assert ("job", None) in unsent, unsent
    await asyncio.to_thread(stack.start_process, "training_run")

    async with harness.client_for(stack) as client:

        async def running() -> events_pb2.RunEvent | None:
            current = await client.get_run(run.name)
            return current if current.state == types_pb2.RUNNING else None

        await harness.eventually(running, 300, "the run to be dispatched after the restart")
        nc = await nats.connect(stack.nats_url)
        try:  # a duplicate delivery of the running attempt's job: the idle worker's claim is refused
            duplicate = events_pb2.TrainingJob(run_id=rid, attempt=1, dataset="waste")
            await _publish(
                nc.jetstream(), NAMES.jobs_subject, duplicate.SerializeToString(), uuid.uuid4().hex
            )
        finally:
            await nc.close()
        final = await harness.wait_terminal(client, run.name)
        models = await harness.models_of(client, run.name)
    refused = harness.log_lines(stack, "trainer_worker", "claim refused", rid)
    harness.record(
        "commit_publish_crash",
        {
            "state": types_pb2.RunState.Name(final.state),
            "attempts": final.attempt,
            "unsent_before_crash": unsent,
            "models": len(models),
            "duplicate_job_refusals": len(refused),
            "duration_s": round(time.monotonic() - started, 1),
        },
    )
    assert final.state == types_pb2.SUCCEEDED, final.failure
    assert final.attempt == 1 and len(models) == 1
    assert all(sent is not None for _, sent in harness.outbox_rows(stack, rid))
    assert len(refused) == 1, refused


async def _a_succeeded_run(stack: Stack, client, index: int) -> str:  # type: ignore[no-untyped-def]
    page = await client.list_runs(states=[types_pb2.SUCCEEDED], page_size=100)
    if page.training_runs:  # another one each time, as far as there are
        return page.training_runs[index % len(page.training_runs)].name
    run = await harness.create(client, "redelivery", epochs=1)
    assert (await harness.wait_terminal(client, run.name)).state == types_pb2.SUCCEEDED
    return run.name


@pytest.mark.parametrize("index", range(RUNS))
async def test_redelivered_and_reordered_messages_change_nothing(stack: Stack, index: int) -> None:
    started = time.monotonic()
    async with harness.client_for(stack) as client:
        name = await _a_succeeded_run(stack, client, index)
        rid = harness.run_id(name)
        refused_before = len(harness.log_lines(stack, "trainer_worker", "claim refused", rid))
        before = await client.get_run(name)
        models_before = [m.name async for m in client.iter_models(page_size=500)]
        stored = await harness.replay(client, name)
        subject = NAMES.run_events_subject(rid)
        injected: dict[str, int] = {}

        def event(**payload: object) -> bytes:
            message = events_pb2.RunEvent(run_id=rid, attempt=before.attempt, **payload)  # type: ignore[arg-type]
            return message.SerializeToString()

        nc = await nats.connect(stack.nats_url)
        js = nc.jetstream()
        try:
            for response in reversed(stored):  # out of order, without Nats-Msg-Id
                if kind(response) in ("progress", "phase_changed", "started"):
                    copy = events_pb2.RunEvent()
                    copy.CopyFrom(response.event)
                    copy.sequence = 0
                    await _publish(js, subject, copy.SerializeToString())
                    injected[kind(response)] = injected.get(kind(response), 0) + 1
            completed = next(r.event for r in stored if kind(r) == "completed")
            for attempt, msg_id in (
                (completed.attempt, None),
                (completed.attempt, uuid.uuid4().hex),
                (completed.attempt + 1, uuid.uuid4().hex),
            ):
                copy = events_pb2.RunEvent()
                copy.CopyFrom(completed)
                copy.attempt, copy.sequence = attempt, 0
                await _publish(js, subject, copy.SerializeToString(), msg_id)
                injected["completed"] = injected.get("completed", 0) + 1
            failure = types_pb2.Failure(kind=types_pb2.INTERNAL_ERROR, message="late failure")
            await _publish(js, subject, event(failed=events_pb2.RunFailed(failure=failure)))
            await _publish(js, subject, event(cancelled=events_pb2.RunCancelled(reason="late cancel")))
            await _publish(
                js,
                subject,
                event(model_registered=events_pb2.ModelRegistered(trained_model_id=uuid.uuid4().hex)),
            )
            await _publish(
                js, subject, event(registration_failed=events_pb2.ModelRegistrationFailed(failure=failure))
            )
            injected["forged"] = 4
            job = events_pb2.TrainingJob(run_id=rid, attempt=before.attempt, dataset="waste")
            await _publish(js, NAMES.jobs_subject, job.SerializeToString())
            await _publish(js, NAMES.jobs_subject, job.SerializeToString(), uuid.uuid4().hex)
            injected["job"] = 2
            await harness.eventually(
                lambda: _drained(js), 120, "every consumer to settle the injected messages"
            )
            await asyncio.sleep(1)
        finally:
            await nc.close()
        after = await client.get_run(name)
        models_after = [m.name async for m in client.iter_models(page_size=500)]
        own = await harness.models_of(client, name)
    refused = harness.log_lines(stack, "trainer_worker", "claim refused", rid)[refused_before:]
    harness.record(
        "redelivery",
        {
            "injected": injected,
            "state_before": types_pb2.RunState.Name(before.state),
            "state_after": types_pb2.RunState.Name(after.state),
            "etag_unchanged": before.etag == after.etag,
            "models_for_run": len(own),
            "job_refusals": len(refused),
            "duration_s": round(time.monotonic() - started, 1),
        },
    )
    assert after == before, "a redelivered or stale message changed the stored run"
    assert len(own) == 1 and own[0].name == before.trained_model
    assert sorted(models_after) == sorted(models_before)
    assert len(refused) == 2, refused  # both job copies were claimed, refused and terminated


async def test_a_stale_attempts_late_completion_does_not_block_the_current_attempt(stack: Stack) -> None:
    """A `completed` of attempt 1 arrives while attempt 2 runs (a worker that lost its lease, yet finished):
    training_run ignores it, and the run must still end SUCCEEDED with exactly one model once attempt 2
    completes (the registrar's answer to attempt 2 must not be dropped as a duplicate of its first answer)."""
    started = time.monotonic()
    async with harness.client_for(stack) as client:
        donor = await _a_succeeded_run(stack, client, 0)
        donor_completed = next(r.event for r in await harness.replay(client, donor) if kind(r) == "completed")
        run = await harness.create(client, "stale-completion", epochs=1)
        rid = harness.run_id(run.name)
        async for response in client.watch(run.name):
            if kind(response) == "started" and response.event.attempt == 1:
                name = harness.worker_process(stack, response.event.started.worker_id)
                await asyncio.to_thread(stack.kill, name)
                await asyncio.to_thread(stack.start_process, name)
            if kind(response) == "started" and response.event.attempt == 2:
                break
        stale = events_pb2.RunEvent()
        stale.CopyFrom(donor_completed)
        stale.run_id, stale.attempt, stale.sequence = rid, 1, 0
        nc = await nats.connect(stack.nats_url)
        try:
            await _publish(nc.jetstream(), NAMES.run_events_subject(rid), stale.SerializeToString())
        finally:
            await nc.close()
        final = await harness.wait_terminal(client, run.name, within=300)
        models = await harness.models_of(client, run.name)
    harness.record("stale_completion", {
        "state": types_pb2.RunState.Name(final.state), "attempts": final.attempt, "models": len(models),
        "duration_s": round(time.monotonic() - started, 1),
    })  # fmt: skip
    assert final.state == types_pb2.SUCCEEDED, (final.failure, [t.reason for t in final.transitions])
    assert final.attempt == 2
    assert len(models) == 1 and final.trained_model == models[0].name
