"""The gRPC API over a real server: claims and owner scoping, publication, lineage, lists, bad input.

Deleting and downloading are in test_api_delete_and_download.py.
"""

from __future__ import annotations

import uuid

import grpc
from google.protobuf import field_mask_pb2

from common.auth import Permission
from common.proto.raven.v1 import trained_model_pb2 as pb
from tests.helpers import bearer, token, worker_token
from tests.integration.trained_model.api_helpers import ALICE, BOB, ROOT, rpc_error, violations
from tests.integration.trained_model.conftest import Env


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
