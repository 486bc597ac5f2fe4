"""Completed after cancel: a run whose cancel won (CANCELLING or CANCELLED) never keeps a model."""

from __future__ import annotations

import asyncio
import time
import uuid

from common.proto.raven.v1 import events_pb2, types_pb2
from tests.integration.trained_model.conftest import Env
from tests.integration.trained_model.test_registrar import replies


async def model_of(env: Env, run_id: str) -> str | None:
    async with env.app.registration._new_uow() as uow:
        model = await uow.models.get_by_training_run(run_id)
    return model.id if model else None


async def test_completed_of_a_cancelled_run_registers_no_model(env: Env, js) -> None:
    run_id = uuid.uuid4().hex[:12]
    env.runs.states[run_id] = (
        types_pb2.CANCELLING
    )  # the cancel came first; training_run will end it CANCELLED
    await js.publish(env.names.run_events_subject(run_id), env.completed_event(run_id).SerializeToString())
    other = uuid.uuid4().hex[:12]  # a run published after it, to know the registrar got past the first
    env.runs.states[other] = types_pb2.RUNNING
    await js.publish(env.names.run_events_subject(other), env.completed_event(other).SerializeToString())
    await replies(js, env, other, "model_registered")
    events = await replies(js, env, run_id, "completed")
    assert [e.WhichOneof("payload") for e in events] == ["completed"]  # no model_registered reply
    assert await model_of(env, run_id) is None


async def test_a_model_registered_before_the_cancel_won_is_removed_when_the_run_ends_cancelled(
    env: Env, js
) -> None:
    run_id = uuid.uuid4().hex[:12]
    env.runs.states[run_id] = types_pb2.RUNNING  # checked before the user's cancel arrived
    subject = env.names.run_events_subject(run_id)
    await js.publish(subject, env.completed_event(run_id).SerializeToString())
    await replies(js, env, run_id, "model_registered")
    assert await model_of(env, run_id) is not None
    # training_run applied `completed` to a CANCELLING run: the cancel stands, it announces CANCELLED
    cancelled = events_pb2.RunEvent(run_id=run_id, attempt=1)
    cancelled.state_changed.from_state = types_pb2.CANCELLING
    cancelled.state_changed.to_state = types_pb2.CANCELLED
    await js.publish(subject, cancelled.SerializeToString())
    deadline = time.monotonic() + 15
    while await model_of(env, run_id) is not None:
        assert time.monotonic() < deadline, "the cancelled run's model was not removed"
        await asyncio.sleep(0.2)
