"""EvaluationService on the real trained_model server (SQLite and PostgreSQL) over real NATS, with dataset
versions from the real training_run server (made READY by the worker's real preparation intake):

- a registered training run's test split evaluation is listed for its model without running anything;
- CreateEvaluation checks the model and the version and queues a job the worker's queue adapter reads;
- the worker's reports (published by its real publisher) move it to SUCCEEDED; stale ones are dropped;
- cancel, watch, list filters and paging, bad input (classes, unknown/deleted model or version).
(ravenctl and permissions: test_evaluations_cli.py; the publish gate's evaluations:
test_publish_gate_evaluations.py.)
"""

from __future__ import annotations

import grpc
import pytest

from common.auth import USER_PERMISSIONS, Permission
from common.proto.raven.v1 import datasets_pb2, evaluations_pb2, types_pb2
from services.trainer_worker.adapters.evaluation_jobs import EvaluationEventPublisher, parse_job
from tests.helpers import bearer, token
from tests.integration.trained_model.evaluation_support import (  # noqa: F401 (fixtures)
    ALICE,
    CLASSES,
    Env,
    evaluation_env,
    make_harness,
    status_of,
    trained_models,
)
from tests.integration.trainer_worker.evaluation_intake import one_job
from tests.integration.training_run.datasets_support import Datasets


async def test_a_training_runs_test_evaluation_is_listed_for_its_model(env: Env) -> None:
    model = await env.register(test_map=0.4)
    listed = await env.stub.ListEvaluations(
        evaluations_pb2.ListEvaluationsRequest(trained_model=model), metadata=ALICE
    )
    assert listed.total_size == 1
    recorded = listed.evaluations[0]
    assert (recorded.state, recorded.dataset_version, recorded.split) == (
        evaluations_pb2.EVALUATION_STATE_SUCCEEDED,
        env.version.name,
        "test",
    )
    assert recorded.split_sha256 == env.version.split_sha256 and recorded.training_run.startswith(
        "trainingRuns/"
    )
    assert recorded.metrics.bbox_map == pytest.approx(0.4)
    assert [c.recommended_score_threshold for c in recorded.metrics.per_class_ap] == [0.3, 0.3]
    assert [types_pb2.ArtifactKind.Name(a.kind) for a in recorded.artifacts] == ["PREDICTIONS"]
    # a run without a test split records none
    without = await env.register(test_map=None)
    empty = await env.stub.ListEvaluations(
        evaluations_pb2.ListEvaluationsRequest(trained_model=without), metadata=ALICE
    )
    assert empty.total_size == 0


async def test_create_queues_a_job_and_the_workers_reports_finish_it(env: Env) -> None:
    model = await env.register()
    created = await env.create(model)
    assert created.state == evaluations_pb2.EVALUATION_STATE_PENDING and created.name.startswith(
        "evaluations/"
    )
    assert (created.trained_model, created.dataset_version, created.split) == (
        model,
        env.version.name,
        "test",
    )

    js = env.h.nc.jetstream()
    async with one_job(js, env.h.names) as msg:
        job = parse_job(msg.data)
        await msg.ack()
    assert job.evaluation_id == created.name.removeprefix("evaluations/") and job.split == "test"
    assert job.dataset_version.name == env.version.name
    assert job.dataset_version.split_manifest.sha256 == env.version.split_manifest.sha256
    assert job.dataset_version.split_sha256 == env.version.split_sha256
    assert list(job.class_names) == CLASSES and job.checkpoint.sha256

    stale = EvaluationEventPublisher(js, env.h.names, job.evaluation_id, 1)
    current = EvaluationEventPublisher(js, env.h.names, job.evaluation_id, 2)
    await current.started("w-2")
    await env.wait_state(created.name, evaluations_pb2.EVALUATION_STATE_RUNNING)
    await stale.failed(types_pb2.Failure(kind=types_pb2.INTERNAL_ERROR, message="lost its job"))
    metrics = types_pb2.DetectionMetrics(bbox_map=0.123456789, bbox_map_50=0.5)
    metrics.per_class_ap.add(class_name="tire", ap=0.2, recommended_score_threshold=0.35)
    artifact = types_pb2.Artifact(
        kind=types_pb2.PREDICTIONS, uri="evaluations/x/2/test_predictions.json", size_bytes=2, sha256="b" * 64
    )
    await current.completed(metrics, [artifact])
    done = await env.wait_state(created.name, evaluations_pb2.EVALUATION_STATE_SUCCEEDED)
    assert done.attempt == 2 and done.worker_id == "w-2" and not done.HasField("failure")
    assert (
        done.metrics.bbox_map == 0.123456789
        and done.metrics.per_class_ap[0].recommended_score_threshold == 0.35
    )
    assert list(done.artifacts) == [artifact]

    watched = [e async for e in env.stub.WatchEvaluation(
        evaluations_pb2.WatchEvaluationRequest(name=created.name), metadata=ALICE)]  # fmt: skip
    assert [e.state for e in watched] == [evaluations_pb2.EVALUATION_STATE_SUCCEEDED]


async def test_cancel_list_and_watch(env: Env) -> None:
    model = await env.register()
    first, second = await env.create(model), await env.create(model, split="val")
    watch = env.stub.WatchEvaluation(evaluations_pb2.WatchEvaluationRequest(name=first.name), metadata=ALICE)
    seen = [await watch.read()]
    cancelled = await env.stub.CancelEvaluation(
        evaluations_pb2.CancelEvaluationRequest(name=first.name, reason="wrong version"), metadata=ALICE
    )
    assert (
        cancelled.state == evaluations_pb2.EVALUATION_STATE_CANCELLED
        and cancelled.cancel_reason == "wrong version"
    )
    while (update := await watch.read()) is not grpc.aio.EOF:
        seen.append(update)
    assert [e.state for e in seen] == [
        evaluations_pb2.EVALUATION_STATE_PENDING,
        evaluations_pb2.EVALUATION_STATE_CANCELLED,
    ]
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await env.stub.CancelEvaluation(
            evaluations_pb2.CancelEvaluationRequest(name=first.name), metadata=ALICE
        )
    assert (
        again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        and "already CANCELLED" in again.value.details()
    )

    names: list[str] = []
    token_ = ""
    while True:
        page = await env.stub.ListEvaluations(
            evaluations_pb2.ListEvaluationsRequest(trained_model=model, page_size=1, page_token=token_),
            metadata=ALICE,
        )
        assert page.total_size == 3  # the run's own test evaluation and the two created
        names += [e.name for e in page.evaluations]
        token_ = page.next_page_token
        if not token_:
            break
    assert len(names) == 3 and names[:2] == [second.name, first.name]
    val = await env.stub.ListEvaluations(
        evaluations_pb2.ListEvaluationsRequest(trained_model=model, split="val"), metadata=ALICE
    )
    assert [e.name for e in val.evaluations] == [second.name]
    by_version = await env.stub.ListEvaluations(
        evaluations_pb2.ListEvaluationsRequest(
            dataset_version=env.version.name, states=[evaluations_pb2.EVALUATION_STATE_CANCELLED]
        ),
        metadata=ALICE,
    )
    assert [e.name for e in by_version.evaluations] == [first.name]


async def test_bad_input_is_refused_with_a_reason_and_nothing_is_created(env: Env) -> None:
    other = await env.register(classes=["bottle", "bag"])
    code, details = await status_of(env.create(other))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "the version has classes the model lacks: 'tire'" in details
    assert "the model has classes the version lacks: 'bag'" in details

    model = await env.register()
    code, details = await status_of(env.create(model, version="datasets/nope/versions/1"))
    assert code == grpc.StatusCode.NOT_FOUND and "datasets/nope/versions/1" in details
    code, _ = await status_of(env.create("trainedModels/nope"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = await status_of(env.create(model, split="holdout"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "split" in details
    code, _ = await status_of(env.create(model, version="datasets/x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = await status_of(env.create(model, metadata=bearer(token("mallory", ["models.view"]))))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # another user cannot see alice's unpublished model, nor its evaluations
    bob = bearer(token("bob", USER_PERMISSIONS - {Permission.VIEW_ALL_MODELS, Permission.VIEW_ALL_DATASETS}))
    code, _ = await status_of(env.create(model, metadata=bob))
    assert code == grpc.StatusCode.NOT_FOUND
    hidden = await env.stub.ListEvaluations(
        evaluations_pb2.ListEvaluationsRequest(trained_model=model),
        metadata=bob,
    )
    assert hidden.total_size == 0

    # a deleted model: refused, and its evaluations are gone with it
    from common.proto.raven.v1 import trained_model_pb2, trained_model_pb2_grpc

    models = trained_model_pb2_grpc.TrainedModelServiceStub(
        grpc.aio.insecure_channel(f"127.0.0.1:{env.app.server.port}")
    )
    await models.DeleteTrainedModel(trained_model_pb2.DeleteTrainedModelRequest(name=model), metadata=ALICE)
    code, _ = await status_of(env.create(model))
    assert code == grpc.StatusCode.NOT_FOUND
    listed = await env.stub.ListEvaluations(
        evaluations_pb2.ListEvaluationsRequest(trained_model=model), metadata=ALICE
    )
    assert listed.total_size == 0

    # a deleted dataset version: refused (NOT_FOUND), as an unknown one
    kept = await env.register()
    await Datasets.of(env.h).stub.DeleteDatasetVersion(
        datasets_pb2.DeleteDatasetVersionRequest(name=env.version.name), metadata=ALICE
    )
    code, details = await status_of(env.create(kept))
    assert code == grpc.StatusCode.NOT_FOUND and env.version.name in details
