"""The gRPC API over a real server: claims and owner scoping, publication, lineage, delete rules, download,
lists.
"""

from __future__ import annotations

import hashlib
import os
import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from common.auth import USER_PERMISSIONS, Permission
from common.proto.raven.v1 import trained_model_pb2 as pb
from common.proto.raven.v1 import types_pb2
from tests.helpers import bearer, token, worker_token
from tests.integration.trained_model.conftest import Env

USER = [
    p for p in USER_PERMISSIONS if p not in (Permission.VIEW_ALL_MODELS, Permission.VIEW_ALL_TRAINING_RUNS)
]
ALICE = bearer(token("alice", USER))
BOB = bearer(token("bob", USER))
ROOT = bearer(token("root", [*USER_PERMISSIONS, Permission.SUPERADMIN]))


async def rpc_error(call) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        result = call
        if hasattr(result, "__aiter__"):
            async for _ in result:
                pass
        else:
            await result
    return caught.value


def violations(error: grpc.aio.AioRpcError) -> set[str]:
    status = rpc_status.from_call(error)
    fields = set()
    for detail in status.details if status else []:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields |= {v.field for v in bad.field_violations}
    return fields


async def test_visibility_and_auth(env: Env) -> None:
    model = await env.seed(owner="alice")
    name = f"trainedModels/{model.id}"
    assert (await env.stub.GetTrainedModel(pb.GetTrainedModelRequest(name=name), metadata=ALICE)).name == name
    error = await rpc_error(env.stub.GetTrainedModel(pb.GetTrainedModelRequest(name=name)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    error = await rpc_error(env.stub.GetTrainedModel(pb.GetTrainedModelRequest(name=name), metadata=BOB))
    assert (
        error.code() == grpc.StatusCode.NOT_FOUND
    )  # another owner's unpublished model does not exist for bob
    no_view = bearer(token("alice", [Permission.EDIT_MODELS]))
    error = await rpc_error(env.stub.GetTrainedModel(pb.GetTrainedModelRequest(name=name), metadata=no_view))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await rpc_error(
        env.stub.GetTrainedModel(pb.GetTrainedModelRequest(name=name), metadata=bearer(worker_token()))
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED  # the worker identity has no user rights
    viewer_all = bearer(token("carol", [Permission.VIEW_MODELS, Permission.VIEW_ALL_MODELS]))
    assert (
        await env.stub.GetTrainedModel(pb.GetTrainedModelRequest(name=name), metadata=viewer_all)
    ).owner == "alice"
    await env.stub.PublishTrainedModel(pb.PublishTrainedModelRequest(name=name), metadata=ALICE)
    seen = await env.stub.GetTrainedModel(pb.GetTrainedModelRequest(name=name), metadata=BOB)
    assert (
        seen.published and seen.checkpoint.uri and seen.config
    )  # what training_run needs to fine-tune from it
    stats = await env.stub.GetTrainedModelStatistics(
        pb.GetTrainedModelStatisticsRequest(name=name), metadata=BOB
    )
    assert (stats.epochs, stats.parameter_count, stats.average_loss) == (3, 1234, 0.42)
    assert stats.evaluation.val.bbox_map == 0.5


async def test_publish_permissions_and_update_cannot_publish(env: Env) -> None:
    model = await env.seed(owner="alice")
    name = f"trainedModels/{model.id}"
    editor = bearer(token("alice", [Permission.VIEW_MODELS, Permission.EDIT_MODELS]))
    change = pb.TrainedModel(name=name, published=True, display_name="renamed")
    error = await rpc_error(
        env.stub.UpdateTrainedModel(
            pb.UpdateTrainedModelRequest(
                trained_model=change, update_mask=field_mask_pb2.FieldMask(paths=["published"])
            ),
            metadata=editor,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "Publish" in error.details()
    updated = await env.stub.UpdateTrainedModel(
        pb.UpdateTrainedModelRequest(
            trained_model=change, update_mask=field_mask_pb2.FieldMask(paths=["display_name", "description"])
        ),
        metadata=editor,
    )
    assert (updated.display_name, updated.published, updated.version) == ("renamed", False, 1)
    error = await rpc_error(
        env.stub.PublishTrainedModel(pb.PublishTrainedModelRequest(name=name), metadata=editor)
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    publisher_bob = bearer(token("bob", [Permission.VIEW_MODELS, Permission.PUBLISH_MODELS]))
    error = await rpc_error(
        env.stub.PublishTrainedModel(pb.PublishTrainedModelRequest(name=name), metadata=publisher_bob)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    published = await env.stub.PublishTrainedModel(pb.PublishTrainedModelRequest(name=name), metadata=ALICE)
    assert published.published and published.published_by == "alice" and published.publish_time.seconds > 0
    error = await rpc_error(
        env.stub.UnpublishTrainedModel(pb.UnpublishTrainedModelRequest(name=name), metadata=editor)
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    stale = await rpc_error(
        env.stub.UpdateTrainedModel(
            pb.UpdateTrainedModelRequest(
                trained_model=pb.TrainedModel(name=name, description="x"),
                etag=updated.etag,
                update_mask=field_mask_pb2.FieldMask(paths=["description"]),
            ),
            metadata=editor,
        )
    )
    assert stale.code() == grpc.StatusCode.ABORTED
    unpublished = await env.stub.UnpublishTrainedModel(
        pb.UnpublishTrainedModelRequest(name=name), metadata=ALICE
    )
    assert not unpublished.published and unpublished.published_by == ""


async def test_publication_gates(env: Env) -> None:
    display = f"gated-{uuid.uuid4().hex[:6]}"
    good = await env.seed(display_name=display, bbox_map=0.6)
    weak = await env.seed(display_name=display, bbox_map=0.3)
    await env.stub.PublishTrainedModel(
        pb.PublishTrainedModelRequest(name=f"trainedModels/{good.id}", min_bbox_map=0.5), metadata=ALICE
    )
    weak_name = f"trainedModels/{weak.id}"
    for req in (
        pb.PublishTrainedModelRequest(name=weak_name, min_bbox_map=0.5),
        pb.PublishTrainedModelRequest(name=weak_name, require_better_than_published=True),
    ):
        error = await rpc_error(env.stub.PublishTrainedModel(req, metadata=ALICE))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    forced = pb.PublishTrainedModelRequest(name=weak_name, require_better_than_published=True, force=True)
    error = await rpc_error(env.stub.PublishTrainedModel(forced, metadata=ALICE))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await env.stub.PublishTrainedModel(forced, metadata=ROOT)).published
    error = await rpc_error(
        env.stub.PublishTrainedModel(
            pb.PublishTrainedModelRequest(name=weak_name, min_bbox_map=2), metadata=ALICE
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_lineage_of_three_generations(env: Env) -> None:
    root = await env.seed(display_name="gen")
    child = await env.seed(display_name="gen", base_model_id=root.id)
    grandchild = await env.seed(display_name="gen", base_model_id=child.id)
    sibling = await env.seed(display_name="gen", base_model_id=root.id)
    lineage = await env.stub.GetModelLineage(
        pb.GetModelLineageRequest(name=f"trainedModels/{grandchild.id}"), metadata=ALICE
    )
    assert [(n.trained_model, n.depth) for n in lineage.ancestors] == [
        (f"trainedModels/{child.id}", -1),
        (f"trainedModels/{root.id}", -2),
    ]
    assert lineage.model.training_run == f"trainingRuns/{grandchild.training_run_id}"
    assert lineage.model.base_model == f"trainedModels/{child.id}"
    assert lineage.model.dataset_snapshot_sha256 == grandchild.dataset_snapshot_sha256
    assert list(lineage.descendants) == []
    from_root = await env.stub.GetModelLineage(
        pb.GetModelLineageRequest(name=f"trainedModels/{root.id}"), metadata=ALICE
    )
    assert [(n.trained_model, n.depth) for n in from_root.descendants] == [
        (f"trainedModels/{child.id}", 1),
        (f"trainedModels/{sibling.id}", 1),
        (f"trainedModels/{grandchild.id}", 2),
    ]
    shallow = await env.stub.GetModelLineage(
        pb.GetModelLineageRequest(name=f"trainedModels/{root.id}", max_depth=1), metadata=ALICE
    )
    assert len(shallow.descendants) == 2


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


async def test_list_filters_ordering_and_keyset_pages(env: Env) -> None:
    display = f"list-{uuid.uuid4().hex[:6]}"
    maps = [0.1, 0.5, 0.3, 0.5, 0.2]
    models = [await env.seed(display_name=display, bbox_map=m) for m in maps]
    await env.seed(display_name=display, owner="bob", bbox_map=0.9)  # bob's unpublished: invisible to alice
    seen, token_ = [], ""
    while True:
        page = await env.stub.ListTrainedModels(
            pb.ListTrainedModelsRequest(display_name=display, page_size=2, page_token=token_), metadata=ALICE
        )
        assert page.total_size == 5
        seen += [m.name for m in page.trained_models]
        token_ = page.next_page_token
        if not token_:
            break
    assert seen == [f"trainedModels/{m.id}" for m in reversed(models)]  # newest first, no gaps or repeats
    by_map, token_ = [], ""
    while True:
        page = await env.stub.ListTrainedModels(
            pb.ListTrainedModelsRequest(
                display_name=display, page_size=2, page_token=token_, order_by=pb.BBOX_MAP_DESC
            ),
            metadata=ALICE,
        )
        by_map += [m.evaluation.val.bbox_map for m in page.trained_models]
        token_ = page.next_page_token
        if not token_:
            break
    assert by_map == sorted(maps, reverse=True)
    best = await env.stub.ListTrainedModels(
        pb.ListTrainedModelsRequest(display_name=display, min_bbox_map=0.3), metadata=ALICE
    )
    assert best.total_size == 3
    everyone = await env.stub.ListTrainedModels(
        pb.ListTrainedModelsRequest(display_name=display), metadata=ROOT
    )
    assert everyone.total_size == 6
    child = await env.seed(display_name=display, base_model_id=models[0].id)
    derived = await env.stub.ListTrainedModels(
        pb.ListTrainedModelsRequest(base_model=f"trainedModels/{models[0].id}", published=False),
        metadata=ALICE,
    )
    assert [m.name for m in derived.trained_models] == [f"trainedModels/{child.id}"]
    first = await env.stub.ListTrainedModels(
        pb.ListTrainedModelsRequest(display_name=display, page_size=1), metadata=ALICE
    )
    error = await rpc_error(
        env.stub.ListTrainedModels(
            pb.ListTrainedModelsRequest(display_name="other", page_token=first.next_page_token),
            metadata=ALICE,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in violations(error)


async def test_bad_input_on_every_rpc_is_a_clear_client_error(env: Env) -> None:
    mask = field_mask_pb2.FieldMask(paths=["display_name"])
    calls = [
        env.stub.GetTrainedModel(pb.GetTrainedModelRequest(name="models/1"), metadata=ALICE),
        env.stub.ListTrainedModels(
            pb.ListTrainedModelsRequest(page_size=-1, min_bbox_map=3, base_model="x"), metadata=ALICE
        ),
        env.stub.ListTrainedModels(pb.ListTrainedModelsRequest(page_token="garbage!"), metadata=ALICE),
        env.stub.UpdateTrainedModel(
            pb.UpdateTrainedModelRequest(trained_model=pb.TrainedModel(name=""), update_mask=mask),
            metadata=ALICE,
        ),
        env.stub.UpdateTrainedModel(
            pb.UpdateTrainedModelRequest(trained_model=pb.TrainedModel(name="trainedModels/x")),
            metadata=ALICE,
        ),
        env.stub.DeleteTrainedModel(pb.DeleteTrainedModelRequest(name="trainedModels/"), metadata=ALICE),
        env.stub.PublishTrainedModel(pb.PublishTrainedModelRequest(name="trainedModels/a/b"), metadata=ALICE),
        env.stub.UnpublishTrainedModel(pb.UnpublishTrainedModelRequest(name="x"), metadata=ALICE),
        env.stub.GetModelLineage(
            pb.GetModelLineageRequest(name="trainedModels/x", max_depth=-1), metadata=ALICE
        ),
        env.stub.ImportTrainedModel(pb.ImportTrainedModelRequest(), metadata=ALICE),
        env.stub.DownloadModelArtifact(
            pb.DownloadModelArtifactRequest(name="trainedModels/../etc"), metadata=ALICE
        ),
        env.stub.GetTrainedModelStatistics(
            pb.GetTrainedModelStatisticsRequest(name="trainedModels/ "), metadata=ALICE
        ),
    ]
    for call in calls:
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert violations(error), f"no field violations in {error.details()}"
    unknown = "trainedModels/" + uuid.uuid4().hex
    for call in [
        env.stub.GetTrainedModel(pb.GetTrainedModelRequest(name=unknown), metadata=ALICE),
        env.stub.GetModelLineage(pb.GetModelLineageRequest(name=unknown), metadata=ALICE),
        env.stub.DownloadModelArtifact(pb.DownloadModelArtifactRequest(name=unknown), metadata=ALICE),
        env.stub.DeleteTrainedModel(pb.DeleteTrainedModelRequest(name=unknown), metadata=ALICE),
        env.stub.UpdateTrainedModel(
            pb.UpdateTrainedModelRequest(
                trained_model=pb.TrainedModel(name=unknown, display_name="x"), update_mask=mask
            ),
            metadata=ALICE,
        ),
    ]:
        assert (await rpc_error(call)).code() == grpc.StatusCode.NOT_FOUND
