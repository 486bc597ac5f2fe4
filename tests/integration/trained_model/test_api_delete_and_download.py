"""The gRPC API over a real server: delete rules (children, active runs, an unreachable training_run) and
the chunked, resumable artifact download.
"""

from __future__ import annotations

import hashlib
import os

import grpc

from common.auth import Permission
from common.proto.raven.v1 import trained_model_pb2 as pb
from common.proto.raven.v1 import types_pb2
from tests.integration.trained_model.api_helpers import ALICE, BOB, rpc_error
from tests.integration.trained_model.conftest import Env


async def test_delete_refusals_and_delete(env: Env) -> None:
    base = await env.seed(owner="alice")
    child = await env.seed(owner="alice", base_model_id=base.id)
    base_name, child_name = f"trainedModels/{base.id}", f"trainedModels/{child.id}"
    error = await rpc_error(
        env.stub.DeleteTrainedModel(pb.DeleteTrainedModelRequest(name=base_name), metadata=ALICE)
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "base model of 1" in error.details()
    env.runs.active_bases.add(child_name)
    error = await rpc_error(
        env.stub.DeleteTrainedModel(pb.DeleteTrainedModelRequest(name=child_name), metadata=ALICE)
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "running training run" in error.details()
    asked = env.runs.requests[-1]
    assert asked.base_model == child_name and asked.page_size == 1
    assert set(asked.states) == {types_pb2.PENDING, types_pb2.RUNNING, types_pb2.CANCELLING}
    caller = env.runs.callers[-1]
    assert caller.subject == "service:trained-model"
    assert caller.permissions == {Permission.VIEW_TRAINING_RUNS, Permission.VIEW_ALL_TRAINING_RUNS}
    env.runs.active_bases.clear()
    error = await rpc_error(
        env.stub.DeleteTrainedModel(pb.DeleteTrainedModelRequest(name=child_name), metadata=BOB)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await rpc_error(
        env.stub.DeleteTrainedModel(
            pb.DeleteTrainedModelRequest(name=child_name, etag='"99"'), metadata=ALICE
        )
    )
    assert error.code() == grpc.StatusCode.ABORTED
    assert env.store.exists(child.checkpoint.uri)
    await env.stub.DeleteTrainedModel(pb.DeleteTrainedModelRequest(name=child_name), metadata=ALICE)
    assert not env.store.exists(child.checkpoint.uri) and not env.store.exists(child.artifacts[0].uri)
    error = await rpc_error(
        env.stub.GetTrainedModel(pb.GetTrainedModelRequest(name=child_name), metadata=ALICE)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    await env.stub.DeleteTrainedModel(
        pb.DeleteTrainedModelRequest(name=base_name), metadata=ALICE
    )  # no child now


async def test_delete_refused_when_training_run_is_unreachable(env: Env) -> None:
    from services.trained_model.adapters.training_runs import GrpcTrainingRunQueries
    from tests.helpers import JWT_SECRET

    model = await env.seed(owner="alice")
    unreachable = GrpcTrainingRunQueries("127.0.0.1:1", secret=JWT_SECRET, timeout=2)
    original, env.app.registry.training_runs = env.app.registry.training_runs, unreachable
    try:
        error = await rpc_error(
            env.stub.DeleteTrainedModel(
                pb.DeleteTrainedModelRequest(name=f"trainedModels/{model.id}"), metadata=ALICE
            )
        )
    finally:
        env.app.registry.training_runs = original
        await unreachable.close()
    assert error.code() == grpc.StatusCode.UNAVAILABLE and "nothing was deleted" in error.details()
    assert (
        await env.stub.GetTrainedModel(
            pb.GetTrainedModelRequest(name=f"trainedModels/{model.id}"), metadata=ALICE
        )
    ).name
    assert env.store.exists(model.checkpoint.uri)


async def test_chunked_download_reassembles_and_resumes(env: Env) -> None:
    data = os.urandom(300_000)
    model = await env.seed(data=data)
    name = f"trainedModels/{model.id}"
    chunks = [
        c
        async for c in env.stub.DownloadModelArtifact(
            pb.DownloadModelArtifactRequest(name=name, chunk_size=64 * 1024), metadata=ALICE
        )
    ]
    assert len(chunks) == 5
    assert (chunks[0].total_size, chunks[0].sha256, chunks[0].filename) == (
        300_000,
        model.checkpoint.sha256,
        "best.pth",
    )
    whole = b"".join(c.data for c in chunks)
    assert hashlib.sha256(whole).hexdigest() == model.checkpoint.sha256
    assert [c.offset for c in chunks] == [i * 64 * 1024 for i in range(5)]
    resumed = [
        c
        async for c in env.stub.DownloadModelArtifact(
            pb.DownloadModelArtifactRequest(name=name, offset=200_000, chunk_size=50_000), metadata=ALICE
        )
    ]
    assert resumed[0].offset == 200_000 and resumed[0].sha256 == model.checkpoint.sha256
    assert (
        hashlib.sha256(whole[:200_000] + b"".join(c.data for c in resumed)).hexdigest()
        == model.checkpoint.sha256
    )
    at_end = [
        c
        async for c in env.stub.DownloadModelArtifact(
            pb.DownloadModelArtifactRequest(name=name, offset=300_000), metadata=ALICE
        )
    ]
    assert [(c.data, c.total_size) for c in at_end] == [(b"", 300_000)]
    log = [
        c
        async for c in env.stub.DownloadModelArtifact(
            pb.DownloadModelArtifactRequest(name=name, kind=types_pb2.LOG), metadata=ALICE
        )
    ]
    assert b"".join(c.data for c in log).startswith(b"epoch 1")
    for req, code in [
        (pb.DownloadModelArtifactRequest(name=name, offset=300_001), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.DownloadModelArtifactRequest(name=name, offset=-1), grpc.StatusCode.INVALID_ARGUMENT),
        (
            pb.DownloadModelArtifactRequest(name=name, chunk_size=5 * 1024 * 1024),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (pb.DownloadModelArtifactRequest(name=name, kind=types_pb2.CURVES), grpc.StatusCode.NOT_FOUND),
        (pb.DownloadModelArtifactRequest(name=name, kind=99), grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        error = await rpc_error(env.stub.DownloadModelArtifact(req, metadata=ALICE))
        assert error.code() == code, (req, error.details())
    error = await rpc_error(
        env.stub.DownloadModelArtifact(pb.DownloadModelArtifactRequest(name=name), metadata=BOB)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
