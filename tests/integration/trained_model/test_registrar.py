"""Completion events → exactly one TrainedModel, verified checkpoint, reply events on the run subject."""

from __future__ import annotations

import asyncio
import time
import uuid

import nats.errors

from common.proto.raven.v1 import events_pb2, trained_model_pb2, types_pb2
from services.trained_model.entrypoints.convert import register_command
from services.trained_model.service_layer.registration import Registered
from tests.helpers import bearer, token
from tests.integration.trained_model.conftest import Env


async def replies(
    js, env: Env, run_id: str, want: str, wait_seconds: float = 20.0
) -> list[events_pb2.RunEvent]:
    """Every event on the run subject, once one with payload ``want`` is there."""
    subject = env.names.run_events_subject(run_id)
    deadline = time.monotonic() + wait_seconds
    while True:
        sub = await js.subscribe(subject, ordered_consumer=True)
        events = []
        try:
            while True:
                msg = await sub.next_msg(timeout=0.3)
                events.append(events_pb2.RunEvent.FromString(msg.data))
        except nats.errors.TimeoutError:  # no more messages for now
            pass
        finally:
            await sub.unsubscribe()
        if any(e.WhichOneof("payload") == want for e in events):
            return events
        assert time.monotonic() < deadline, (
            f"no {want} event for {run_id}: {[e.WhichOneof('payload') for e in events]}"
        )
        await asyncio.sleep(0.2)


async def test_duplicate_completion_events_register_one_model(env: Env, js) -> None:
    run_id = uuid.uuid4().hex[:12]
    event = env.completed_event(run_id, display_name=f"dup-{run_id}")
    subject = env.names.run_events_subject(run_id)
    # Three copies in the stream (no dedup id: a worker retrying after a lost ack), two of them at once.
    await js.publish(subject, event.SerializeToString())
    await asyncio.gather(*(js.publish(subject, event.SerializeToString()) for _ in range(2)))
    events = await replies(js, env, run_id, "model_registered")
    await asyncio.sleep(1.5)  # let every copy be processed before counting
    events = await replies(js, env, run_id, "model_registered")
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds.count("completed") == 3
    assert kinds.count("model_registered") == 1, (
        kinds
    )  # re-published on each copy, deduplicated by Nats-Msg-Id
    registered = next(e for e in events if e.WhichOneof("payload") == "model_registered")
    assert (registered.run_id, registered.attempt) == (run_id, 1)
    listed = await env.stub.ListTrainedModels(
        trained_model_pb2.ListTrainedModelsRequest(display_name=f"dup-{run_id}"),
        metadata=bearer(token("alice")),
    )
    assert [m.name for m in listed.trained_models] == [
        f"trainedModels/{registered.model_registered.trained_model_id}"
    ]
    model = listed.trained_models[0]
    assert model.training_run == f"trainingRuns/{run_id}" and model.version == 1
    assert model.checkpoint.sha256 == event.completed.artifacts[0].sha256
    assert model.evaluation.val.bbox_map == 0.5 and model.evaluation.best_epoch == 2
    assert [a.kind for a in model.artifacts] == [types_pb2.LOG]
    assert model.config["model"]["bbox_head"]["num_classes"] == 1


async def test_a_later_attempts_completion_is_answered_after_a_stale_one_registered(env: Env, js) -> None:
    """Attempt 1's `completed` (a worker that lost its lease) was registered first; attempt 2's `completed`
    finds that model, and its `model_registered` (attempt 2) must reach the stream (training_run waits)."""
    run_id = uuid.uuid4().hex[:12]
    event = env.completed_event(run_id, display_name=f"stale-{run_id}")
    subject = env.names.run_events_subject(run_id)
    await js.publish(subject, event.SerializeToString())
    await replies(js, env, run_id, "model_registered")
    event.attempt = 2
    await js.publish(subject, event.SerializeToString())
    await js.publish(subject, event.SerializeToString())  # a redelivery of attempt 2's is still deduplicated
    deadline = time.monotonic() + 20
    while True:
        events = await replies(js, env, run_id, "model_registered")
        registered = [e for e in events if e.WhichOneof("payload") == "model_registered"]
        if len(registered) >= 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    await asyncio.sleep(1.0)
    events = await replies(js, env, run_id, "model_registered")
    registered = [e for e in events if e.WhichOneof("payload") == "model_registered"]
    assert [e.attempt for e in registered] == [1, 2]
    assert len({e.model_registered.trained_model_id for e in registered}) == 1  # still one model


async def test_concurrent_registration_of_one_run_creates_one_model(env: Env) -> None:
    run_id = uuid.uuid4().hex[:12]
    command = register_command(env.completed_event(run_id))
    outcomes = await asyncio.gather(*(env.app.registration.register_completed(command) for _ in range(3)))
    assert all(isinstance(o, Registered) for o in outcomes)
    assert len({o.model.id for o in outcomes}) == 1  # type: ignore[union-attr]
    assert sum(o.created for o in outcomes) == 1  # type: ignore[union-attr]


async def test_concurrent_runs_of_one_name_get_distinct_versions(env: Env) -> None:
    name = f"v-{uuid.uuid4().hex[:6]}"
    models = await asyncio.gather(*(env.seed(display_name=name) for _ in range(4)))
    assert sorted(m.version for m in models) == [1, 2, 3, 4]


async def test_checkpoint_sha256_mismatch_is_not_registered(env: Env, js) -> None:
    run_id = uuid.uuid4().hex[:12]
    event = env.completed_event(run_id, sha256="0" * 64, display_name=f"bad-{run_id}")
    await js.publish(env.names.run_events_subject(run_id), event.SerializeToString())
    events = await replies(js, env, run_id, "registration_failed")
    failed = next(e for e in events if e.WhichOneof("payload") == "registration_failed")
    assert failed.registration_failed.failure.kind == types_pb2.ARTIFACT_MISMATCH
    assert "sha256" in failed.registration_failed.failure.message
    assert not any(e.WhichOneof("payload") == "model_registered" for e in events)
    listed = await env.stub.ListTrainedModels(
        trained_model_pb2.ListTrainedModelsRequest(display_name=f"bad-{run_id}"),
        metadata=bearer(token("alice")),
    )
    assert listed.total_size == 0


async def test_missing_checkpoint_is_not_registered(env: Env) -> None:
    run_id = uuid.uuid4().hex[:12]
    event = env.completed_event(run_id)
    env.store.delete(event.completed.artifacts[0].uri)
    outcome = await env.app.registration.register_completed(register_command(event))
    assert not isinstance(outcome, Registered)
    assert "missing" in outcome.message
