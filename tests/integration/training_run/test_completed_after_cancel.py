"""Completed after cancel: the run ends CANCELLED with no model; a model registered first wins instead."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from common.proto.raven.v1 import events_pb2, types_pb2
from common.proto.raven.v1 import training_run_pb2 as pb
from tests.integration.training_run.conftest import Harness


def run_id(name: str) -> str:
    return name.split("/", 1)[1]


async def test_completed_after_cancel_ends_cancelled_and_attaches_no_model(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    run = await h.create()
    await h.claim(run.name)
    cancelling = await h.stub.CancelTrainingRun(pb.CancelTrainingRunRequest(name=run.name), metadata=h.user)
    assert cancelling.state == types_pb2.CANCELLING
    rid = run_id(run.name)
    await h.publish_event(rid, 1, completed=events_pb2.RunCompleted())  # the worker was finishing
    ended = await h.wait_for(run.name, lambda r: r.state != types_pb2.CANCELLING)
    assert ended.state == types_pb2.CANCELLED and not ended.trained_model
    assert "cancel" in ended.transitions[-1].reason
    # the registrar's answer (it registered before it learnt of the cancel) is not attached
    await h.publish_event(rid, 1, model_registered=events_pb2.ModelRegistered(trained_model_id="m-late"))
    await asyncio.sleep(1.0)  # the tracker applies events within milliseconds
    stored = await h.get(run.name)
    assert stored.state == types_pb2.CANCELLED and not stored.trained_model


async def test_cancel_is_refused_once_the_model_is_being_registered(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    run = await h.create()
    await h.claim(run.name)
    await h.publish_event(run_id(run.name), 1, completed=events_pb2.RunCompleted())
    await h.wait_for(run.name, lambda r: r.progress.phase == types_pb2.UPLOADING)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await h.stub.CancelTrainingRun(pb.CancelTrainingRunRequest(name=run.name), metadata=h.user)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await h.publish_event(
        run_id(run.name), 1, model_registered=events_pb2.ModelRegistered(trained_model_id="m")
    )
    done = await h.wait_for(run.name, lambda r: r.state == types_pb2.SUCCEEDED)
    assert done.trained_model == "trainedModels/m"
