"""ravenctl evaluations get/list and models compare (same split, refused, --allow-different-splits)
against the real trained_model and training_run servers, and each EvaluationService RPC's permission
(cancel: its creator only)."""

from __future__ import annotations

import json

import grpc
import pytest

from common.auth import USER_PERMISSIONS, Permission
from common.proto.raven.v1 import evaluations_pb2
from tests.helpers import bearer, token
from tests.integration.trained_model.evaluation_support import (  # noqa: F401 (fixtures)
    ALICE,
    Env,
    evaluation_env,
    make_harness,
    ravenctl,
    status_of,
    trained_models,
)
from tests.integration.training_run.test_discovery_cli import logs_to_stderr  # noqa: F401

pytestmark = pytest.mark.usefixtures("logs_to_stderr")  # ravenctl's stdout stays its own


async def test_ravenctl_evaluations_and_compare_on_the_same_split(env: Env) -> None:
    a, b = await env.register(test_map=0.4), await env.register(test_map=0.3)
    listed = await ravenctl(env, "-o", "json", "evaluations", "list", "--model", a)
    assert listed.exit_code == 0, listed.output
    (recorded,) = json.loads(listed.stdout)["evaluations"]
    shown = await ravenctl(env, "evaluations", "get", recorded["name"])
    assert shown.exit_code == 0 and "SUCCEEDED" in shown.output and env.version.name in shown.output

    same = await ravenctl(env, "-o", "json", "models", "compare", a, b)
    assert same.exit_code == 0, same.output
    data = json.loads(same.stdout)
    assert data["same_split"] and data["compared_on"] == f"{env.version.name} / test"
    assert [m["metrics"]["bbox_map"] for m in data["models"]] == [pytest.approx(0.4), pytest.approx(0.3)]
    table = await ravenctl(env, "models", "compare", a, b)
    assert table.exit_code == 0 and f"compared on {env.version.name} / test" in table.output

    plain = await env.register(test_map=0.9, dataset="waste/v1")  # evaluated on another split
    refused = await ravenctl(env, "models", "compare", a, plain)
    assert refused.exit_code == 2
    assert "no evaluation on the same dataset version and split" in refused.output
    assert "--allow-different-splits" in refused.output and "Traceback" not in refused.output
    allowed = await ravenctl(env, "models", "compare", a, plain, "--allow-different-splits")
    assert allowed.exit_code == 0 and "WARNING: different splits" in allowed.output


async def test_each_rpc_needs_its_permission_and_cancel_its_creator(env: Env) -> None:
    model = await env.register()
    created = await env.create(model)
    name = created.name
    nothing = bearer(token("alice", ["models.view"]))
    calls = {
        "GetEvaluation": env.stub.GetEvaluation(
            evaluations_pb2.GetEvaluationRequest(name=name), metadata=nothing
        ),
        "ListEvaluations": env.stub.ListEvaluations(
            evaluations_pb2.ListEvaluationsRequest(), metadata=nothing
        ),
        "CancelEvaluation": env.stub.CancelEvaluation(
            evaluations_pb2.CancelEvaluationRequest(name=name), metadata=nothing
        ),
    }
    for rpc, call in calls.items():
        code, details = await status_of(call)
        assert code == grpc.StatusCode.PERMISSION_DENIED, rpc
        assert "evaluations." in details, (rpc, details)
    watch = env.stub.WatchEvaluation(evaluations_pb2.WatchEvaluationRequest(name=name), metadata=nothing)
    code, _ = await status_of(watch.read())
    assert code == grpc.StatusCode.PERMISSION_DENIED

    # carol sees the model once it is published, but may not cancel alice's evaluation
    from common.proto.raven.v1 import trained_model_pb2, trained_model_pb2_grpc

    channel = grpc.aio.insecure_channel(f"127.0.0.1:{env.app.server.port}")
    models = trained_model_pb2_grpc.TrainedModelServiceStub(channel)
    await models.PublishTrainedModel(trained_model_pb2.PublishTrainedModelRequest(name=model), metadata=ALICE)
    await channel.close()
    carol = bearer(
        token("carol", USER_PERMISSIONS - {Permission.VIEW_ALL_MODELS, Permission.VIEW_ALL_DATASETS})
    )
    seen = await env.stub.GetEvaluation(evaluations_pb2.GetEvaluationRequest(name=name), metadata=carol)
    assert seen.name == name
    code, details = await status_of(
        env.stub.CancelEvaluation(evaluations_pb2.CancelEvaluationRequest(name=name), metadata=carol)
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED and "only the creator" in details
    # nor evaluate the model on alice's dataset version, which carol cannot see
    code, _ = await status_of(env.create(model, metadata=carol))
    assert code == grpc.StatusCode.NOT_FOUND
