"""EvaluationService on the real trained_model server (SQLite and PostgreSQL) over real NATS, with dataset
versions from the real training_run server (made READY by the worker's real preparation intake):

- a registered training run's test split evaluation is listed for its model without running anything;
- CreateEvaluation checks the model and the version and queues a job the worker's queue adapter reads;
- the worker's reports (published by its real publisher) move it to SUCCEEDED; stale ones are dropped;
- cancel, watch, list filters and paging, bad input (classes, unknown/deleted model or version);
- ravenctl evaluations get/list and models compare (same split, refused, --allow-different-splits).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner, Result

from common.artifacts import ArtifactStore
from common.auth import USER_PERMISSIONS, Permission
from common.proto.raven.v1 import datasets_pb2, evaluations_pb2, evaluations_pb2_grpc, events_pb2, types_pb2
from common.settings import Settings
from services.cli.main import app as ravenctl_app
from services.trained_model.bootstrap import App, build_app
from services.trained_model.entrypoints.convert import register_command
from services.trained_model.service_layer.registration import Registered
from services.trainer_worker.adapters.evaluation_jobs import (
    EvaluationEventPublisher,
    EvaluationJobQueue,
    parse_job,
)
from tests.fixtures.dataset_versions import write_flights
from tests.helpers import JWT_SECRET, bearer, token
from tests.integration.training_run import conftest as training_run_fixtures
from tests.integration.training_run.conftest import AppFactory, Harness
from tests.integration.training_run.datasets_support import Datasets, dataset_root, preparing_worker, uri
from tests.integration.training_run.test_discovery_cli import logs_to_stderr  # noqa: F401

pytestmark = pytest.mark.usefixtures("logs_to_stderr")  # ravenctl's stdout stays its own
# the real training_run server's fixtures (its dataset versions), used here beside the trained_model server
make_harness = training_run_fixtures.make_harness
trained_models = training_run_fixtures.trained_models
ALICE = bearer(token("alice"))
CLASSES = ["bottle", "tire"]


@dataclass
class Env:
    h: Harness
    app: App
    store: ArtifactStore
    stub: evaluations_pb2_grpc.EvaluationServiceStub
    version: datasets_pb2.DatasetVersion

    async def register(
        self, *, classes: list[str] = CLASSES, test_map: float | None = 0.4, dataset: str = ""
    ) -> str:
        """A model as the registrar registers a run's completion (the run's test evaluation included)."""
        run_id = uuid.uuid4().hex[:12]
        ckpt = self.store.put_bytes(f"runs/{run_id}/best.pth", f"weights {run_id}".encode())
        event = events_pb2.RunEvent(run_id=run_id, attempt=1)
        done = event.completed
        done.artifacts.add(
            kind=types_pb2.CHECKPOINT, uri=ckpt.key, size_bytes=ckpt.size_bytes, sha256=ckpt.sha256
        )
        predictions = self.store.put_bytes(f"runs/{run_id}/test_predictions.json", b"[]")
        done.artifacts.add(
            kind=types_pb2.PREDICTIONS, uri=predictions.key, size_bytes=predictions.size_bytes,
            sha256=predictions.sha256,
        )  # fmt: skip
        done.evaluation.val.bbox_map = 0.5
        if test_map is not None:
            done.evaluation.test.bbox_map = test_map
            for name in classes:
                done.evaluation.test.per_class_ap.add(
                    class_name=name, ap=test_map, recommended_score_threshold=0.3
                )
        done.class_names.extend(classes)
        done.config.update({"model": {"bbox_head": {"num_classes": len(classes)}}})
        done.dataset = dataset or self.version.name
        done.dataset_version = done.dataset if dataset == "" else ""
        done.split_sha256 = self.version.split_sha256 if dataset == "" else ""
        done.owner, done.display_name, done.model_template = "alice", f"m-{run_id}", "rtmdet_tiny"
        outcome = await self.app.registration.register_completed(register_command(event))
        assert isinstance(outcome, Registered), outcome
        return f"trainedModels/{outcome.model.id}"

    async def create(self, model: str, version: str = "", split: str = "test", metadata: Any = ALICE) -> Any:
        request = evaluations_pb2.CreateEvaluationRequest(
            trained_model=model, dataset_version=version or self.version.name, split=split
        )
        return await self.stub.CreateEvaluation(request, metadata=metadata)

    async def get(self, name: str) -> evaluations_pb2.Evaluation:
        return await self.stub.GetEvaluation(evaluations_pb2.GetEvaluationRequest(name=name), metadata=ALICE)

    async def wait_state(self, name: str, state: int, timeout: float = 15.0) -> evaluations_pb2.Evaluation:  # noqa: ASYNC109
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = await self.get(name)
            if found.state == state:
                return found
            assert asyncio.get_running_loop().time() < deadline, f"state {state} not reached: {found}"
            await asyncio.sleep(0.05)


async def ready_version(h: Harness) -> datasets_pb2.DatasetVersion:
    """A READY version with train, val and test images (prepared by the worker's real intake)."""
    ds = Datasets.of(h)
    write_flights(dataset_root(h) / "survey", n_flights=8, frames=3)
    options = datasets_pb2.SplitOptions(train_fraction=0.5, val_fraction=0.25)
    version = await ds.version((await ds.create()).name, uri(h, "survey"), split_options=options)
    async with preparing_worker(h, "w-evaluations"):
        ready = await ds.wait_state(version.name, datasets_pb2.DATASET_VERSION_STATE_READY, timeout=60)
    assert {s.split: s.images for s in ready.split.splits}.get("test", 0) > 0, ready.split
    return ready


@pytest.fixture
async def env(
    make_harness: AppFactory, database_url: str, tmp_path: Path, nats_url: str
) -> AsyncIterator[Env]:
    h = await make_harness()
    version = await ready_version(h)
    settings = Settings(
        data_dir=tmp_path / "trained_model", database_url=database_url, nats_url=nats_url,
        jwt_secret=JWT_SECRET, training_run_addr=f"127.0.0.1:{h.app.port}",
        artifact_root=h.app.settings.artifact_root, log_json=False,
    )  # fmt: skip
    store = ArtifactStore(h.app.settings.artifact_root)
    app = await build_app(settings, address="127.0.0.1:0", names=h.names, artifacts=store)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.server.port}")
    try:
        yield Env(h, app, store, evaluations_pb2_grpc.EvaluationServiceStub(channel), version)
    finally:
        await channel.close()
        await app.close()


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
    queue = EvaluationJobQueue(js, env.h.names, ack_wait=30.0)
    await queue.start()
    try:
        msg = await queue.fetch_one(5.0)
        assert msg is not None
        job = parse_job(msg.data)
        await msg.ack()
    finally:
        await queue.close()
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


async def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value.code(), refused.value.details() or ""


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


async def ravenctl(env: Env, *args: str) -> Result:
    loop = asyncio.get_running_loop()

    def on_test_loop(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    base = [
        "--training-run-addr", f"127.0.0.1:{env.h.app.port}",
        "--trained-model-addr", f"127.0.0.1:{env.app.server.port}", "--token", token("alice"),
    ]  # fmt: skip
    return await asyncio.to_thread(
        CliRunner().invoke, ravenctl_app, [*base, *args], obj=on_test_loop, env={"RAVEN_TOKEN": None}
    )


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
