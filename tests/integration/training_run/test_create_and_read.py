"""Create (idempotent, validated, queued), Get, List (keyset pages), Update, Delete, auth and scoping."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from common.auth import USER_PERMISSIONS, Permission
from common.proto.raven.v1 import training_run_pb2 as pb
from common.proto.raven.v1 import types_pb2
from tests.helpers import bearer, token, worker_token
from tests.integration.training_run.conftest import CLASSES, Harness, pull_jobs

BOB = bearer(token("bob", USER_PERMISSIONS - {Permission.VIEW_ALL_TRAINING_RUNS}))


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)
    assert status is not None, "no rich status"
    found: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


async def test_create_is_idempotent_and_queues_exactly_one_job(harness: Harness, unique: str) -> None:
    first = await harness.create(request_id=f"req-{unique}")
    again = await harness.create(request_id=f"req-{unique}")
    assert again.name == first.name
    assert first.state == types_pb2.PENDING and first.attempt == 1 and first.owner == "alice"
    assert list(first.class_names) == CLASSES  # defaults to the dataset's categories
    assert first.config_sha256 and "rtmdet" in first.resolved_config.lower()
    assert first.resolved_config_data.fields["model"].struct_value.fields
    jobs = await pull_jobs(harness.nc, harness.names, expect=1)
    assert [(j.run_id, j.attempt) for j in jobs] == [(first.name.split("/")[1], 1)]
    assert jobs[0].config_sha256 == first.config_sha256 and list(jobs[0].class_names) == CLASSES
    fetched = await harness.get(first.name)
    assert (
        fetched.resolved_config == first.resolved_config
        and fetched.transitions[0].to_state == types_pb2.PENDING
    )


async def test_concurrent_creates_with_one_request_id_give_one_run(
    sqlite_harness: Harness, unique: str
) -> None:
    runs = await asyncio.gather(*(sqlite_harness.create(request_id=f"same-{unique}") for _ in range(4)))
    assert len({r.name for r in runs}) == 1


async def test_validation_errors_carry_field_violations_and_store_nothing(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    bad = dict(
        display_name="",
        dataset="../etc",
        model_template="nope",
        class_names=["bottle", "bottle", "cat"],
        hyperparameters=types_pb2.Hyperparameters(epochs=9999, learning_rate=5, max_attempts=50),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.create(**bad)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(caught.value)
    for field in (
        "training_run.display_name",
        "training_run.dataset",
        "training_run.model_template",
        "training_run.hyperparameters.epochs",
        "training_run.hyperparameters.learning_rate",
        "training_run.hyperparameters.max_attempts",
    ):
        assert field in found, (field, found)
    for dataset in ("/abs/path", "s3://bucket/x", "missing/dataset", "", "a/../../b"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await h.create(dataset=dataset)
        assert "training_run.dataset" in violations(caught.value), dataset
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.create(class_names=["bottle", "cat"])
    assert "cat" in violations(caught.value)["training_run.class_names"]
    for fraction in (1e308, float("inf"), float("nan")):  # 1e308 once overflowed the train image count
        hyperparameters = types_pb2.Hyperparameters(epochs=1, train_fraction=fraction)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await h.create(hyperparameters=hyperparameters)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (fraction, caught.value.details())
        assert "training_run.hyperparameters.train_fraction" in violations(caught.value), fraction
    listed = await h.stub.ListTrainingRuns(pb.ListTrainingRunsRequest(), metadata=h.user)
    assert listed.total_size == 0


async def test_base_model_must_exist_be_published_and_match_classes(
    sqlite_harness: Harness, unique: str
) -> None:
    h = sqlite_harness
    from common.proto.raven.v1 import trained_model_pb2

    def model(name: str, published: bool, classes: list[str]) -> trained_model_pb2.TrainedModel:
        return trained_model_pb2.TrainedModel(
            name=name,
            published=published,
            class_names=classes,
            model_template="rtmdet_tiny",
            checkpoint=types_pb2.Artifact(uri=f"models/{unique}/ckpt.pth"),
        )

    h.trained_models.models[f"trainedModels/u{unique}"] = model(f"trainedModels/u{unique}", False, CLASSES)
    h.trained_models.models[f"trainedModels/o{unique}"] = model(f"trainedModels/o{unique}", True, ["x", "y"])
    for base, needle in (
        (f"trainedModels/missing{unique}", "does not exist"),
        (f"trainedModels/u{unique}", "not published"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await h.create(base_model=base)
        assert needle in violations(caught.value)["training_run.base_model"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.create(base_model=f"trainedModels/o{unique}")
    assert "base model" in violations(caught.value)["training_run.class_names"]
    assert h.trained_models.seen_metadata[-1]["authorization"].startswith("Bearer ")


async def test_list_pages_are_stable_under_concurrent_inserts(harness: Harness) -> None:
    h = harness
    created = [await h.create(display_name=f"run {i}") for i in range(5)]
    seen: list[str] = []
    page = await h.stub.ListTrainingRuns(pb.ListTrainingRunsRequest(page_size=2), metadata=h.user)
    assert page.total_size == 5
    seen += [r.name for r in page.training_runs]
    await h.create(display_name="newer, inserted while paging")
    while page.next_page_token:
        page = await h.stub.ListTrainingRuns(
            pb.ListTrainingRunsRequest(page_size=2, page_token=page.next_page_token), metadata=h.user
        )
        seen += [r.name for r in page.training_runs]
    assert seen == [r.name for r in reversed(created)]  # newest first, nothing skipped or repeated
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.stub.ListTrainingRuns(pb.ListTrainingRunsRequest(page_token="garbage!"), metadata=h.user)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    filtered = await h.stub.ListTrainingRuns(
        pb.ListTrainingRunsRequest(states=[types_pb2.RUNNING]), metadata=h.user
    )
    assert filtered.total_size == 0


async def test_list_leaves_out_the_resolved_config_that_get_has(harness: Harness) -> None:
    h = harness
    created = await h.create(display_name="with its config")
    assert created.resolved_config and created.resolved_config_data.fields
    listed = await h.stub.ListTrainingRuns(
        pb.ListTrainingRunsRequest(states=[types_pb2.PENDING]), metadata=h.user
    )
    (found,) = [r for r in listed.training_runs if r.name == created.name]
    assert (found.display_name, found.config_sha256) == ("with its config", created.config_sha256)
    assert found.resolved_config == "" and not found.HasField("resolved_config_data")
    fetched = await h.stub.GetTrainingRun(pb.GetTrainingRunRequest(name=created.name), metadata=h.user)
    assert fetched.resolved_config == created.resolved_config
    assert fetched.resolved_config_data == created.resolved_config_data


async def test_auth_and_owner_scoping(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    run = await h.create()
    get = pb.GetTrainingRunRequest(name=run.name)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.stub.GetTrainingRun(get)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.stub.GetTrainingRun(get, metadata=bearer(token("alice", [Permission.EDIT_TRAINING_RUNS])))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.stub.GetTrainingRun(get, metadata=BOB)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.stub.CancelTrainingRun(pb.CancelTrainingRunRequest(name=run.name), metadata=BOB)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # the worker identity has no user rights
        await h.stub.GetTrainingRun(get, metadata=bearer(worker_token()))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # and users can't act as workers
        await h.stub.ClaimTrainingRun(
            pb.ClaimTrainingRunRequest(name=run.name, worker_id="x", job_attempt=1), metadata=h.user
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    viewer = bearer(
        token(
            "carol",
            [
                Permission.VIEW_TRAINING_RUNS,
                Permission.VIEW_ALL_TRAINING_RUNS,
                Permission.CANCEL_TRAINING_RUNS,
            ],
        )
    )
    assert (await h.stub.GetTrainingRun(get, metadata=viewer)).name == run.name
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.stub.CancelTrainingRun(pb.CancelTrainingRunRequest(name=run.name), metadata=viewer)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    bob_list = await h.stub.ListTrainingRuns(pb.ListTrainingRunsRequest(), metadata=BOB)
    assert bob_list.total_size == 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.stub.ListTrainingRuns(pb.ListTrainingRunsRequest(owner="alice"), metadata=BOB)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_update_with_mask_and_etag_then_delete_only_when_terminal(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    run = await h.create()
    updated = await h.stub.UpdateTrainingRun(
        pb.UpdateTrainingRunRequest(
            training_run=pb.TrainingRun(name=run.name, display_name="renamed", description="ignored"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            etag=run.etag,
        ),
        metadata=h.user,
    )
    assert updated.display_name == "renamed" and updated.description == "" and updated.etag != run.etag
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.stub.UpdateTrainingRun(
            pb.UpdateTrainingRunRequest(
                training_run=pb.TrainingRun(name=run.name, display_name="again"),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
                etag=run.etag,
            ),
            metadata=h.user,
        )
    assert caught.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.stub.UpdateTrainingRun(
            pb.UpdateTrainingRunRequest(
                training_run=pb.TrainingRun(name=run.name, dataset="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["dataset"]),
            ),
            metadata=h.user,
        )
    assert "update_mask" in violations(caught.value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.stub.DeleteTrainingRun(pb.DeleteTrainingRunRequest(name=run.name), metadata=h.user)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await h.stub.CancelTrainingRun(pb.CancelTrainingRunRequest(name=run.name), metadata=h.user)
    await h.stub.DeleteTrainingRun(pb.DeleteTrainingRunRequest(name=run.name), metadata=h.user)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await h.get(run.name)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_hyperparameter_set_to_zero_is_honoured_and_an_unset_one_takes_the_default(
    sqlite_harness: Harness,
) -> None:
    h = sqlite_harness
    asked = await h.create(hyperparameters=types_pb2.Hyperparameters(epochs=2, seed=0, frozen_stages=-1))
    assert asked.hyperparameters.HasField("seed") and asked.hyperparameters.seed == 0
    randomness = asked.resolved_config_data.fields["randomness"].struct_value.fields
    assert randomness["seed"].number_value == 0
    chosen = await h.create(hyperparameters=types_pb2.Hyperparameters(epochs=2, seed=7))
    assert chosen.hyperparameters.seed == 7
    assert chosen.resolved_config_data.fields["randomness"].struct_value.fields["seed"].number_value == 7
    default = await h.create(hyperparameters=types_pb2.Hyperparameters(epochs=2))
    assert default.hyperparameters.HasField("image_size") and default.hyperparameters.image_size == 160
    assert default.hyperparameters.max_attempts == 3 and default.hyperparameters.frozen_stages == -1
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # rtmdet_tiny from random weights: nothing to freeze
        await h.create(hyperparameters=types_pb2.Hyperparameters(epochs=2, frozen_stages=0))
    assert "random backbone weights" in violations(caught.value)["training_run.hyperparameters.frozen_stages"]
