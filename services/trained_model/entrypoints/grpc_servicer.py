"""TrainedModelService servicer: translates protobuf ↔ commands; no business rules here."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf import empty_pb2

from common.auth import Permission
from common.grpc_interceptors import principal
from common.proto.raven.v1 import trained_model_pb2 as pb
from common.proto.raven.v1 import trained_model_pb2_grpc
from services.trained_model.entrypoints import convert
from services.trained_model.service_layer.commands import (
    ImportTrainedModel,
    ListTrainedModels,
    PublishTrainedModel,
    UpdateTrainedModel,
)
from services.trained_model.service_layer.registration import ModelRegistration
from services.trained_model.service_layer.registry import ModelRegistry

_SERVICE = "/raven.v1.TrainedModelService/"
# Coarse claims checked by the auth interceptor before a handler runs; owner scoping is the service layer's.
REQUIRED_PERMISSIONS = {
    f"{_SERVICE}GetTrainedModel": Permission.VIEW_MODELS,
    f"{_SERVICE}ListTrainedModels": Permission.VIEW_MODELS,
    f"{_SERVICE}UpdateTrainedModel": Permission.EDIT_MODELS,
    f"{_SERVICE}DeleteTrainedModel": Permission.DELETE_MODELS,
    f"{_SERVICE}PublishTrainedModel": Permission.PUBLISH_MODELS,
    f"{_SERVICE}UnpublishTrainedModel": Permission.PUBLISH_MODELS,
    f"{_SERVICE}GetModelLineage": Permission.VIEW_MODELS,
    f"{_SERVICE}ImportTrainedModel": Permission.IMPORT_MODELS,
    f"{_SERVICE}DownloadModelArtifact": Permission.VIEW_MODELS,
    f"{_SERVICE}GetTrainedModelStatistics": Permission.VIEW_STATISTICS,
    f"{_SERVICE}SetModelAlias": Permission.EDIT_MODELS,
    f"{_SERVICE}DeleteModelAlias": Permission.EDIT_MODELS,
}


class TrainedModelServicer(trained_model_pb2_grpc.TrainedModelServiceServicer):
    def __init__(self, registry: ModelRegistry, registration: ModelRegistration) -> None:
        self._registry = registry
        self._registration = registration

    async def GetTrainedModel(
        self, request: pb.GetTrainedModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.TrainedModel:
        return convert.model_to_proto(await self._registry.get(principal(), request.name))

    async def ListTrainedModels(
        self, request: pb.ListTrainedModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTrainedModelsResponse:
        query = ListTrainedModels(
            page_size=request.page_size,
            page_token=request.page_token,
            display_name=request.display_name,
            published=request.published if request.HasField("published") else None,
            base_model=request.base_model,
            dataset=request.dataset,
            model_template=request.model_template,
            min_bbox_map=request.min_bbox_map,
            order_by_map=request.order_by == pb.BBOX_MAP_DESC,
            owner=request.owner,
        )
        page = await self._registry.list(principal(), query)
        return pb.ListTrainedModelsResponse(
            trained_models=[convert.model_to_proto(m) for m in page.models],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )

    async def UpdateTrainedModel(
        self, request: pb.UpdateTrainedModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.TrainedModel:
        model = request.trained_model
        command = UpdateTrainedModel(
            name=model.name,
            paths=tuple(request.update_mask.paths),
            display_name=model.display_name,
            description=model.description,
            etag=request.etag or model.etag,
        )
        return convert.model_to_proto(await self._registry.update(principal(), command))

    async def DeleteTrainedModel(
        self, request: pb.DeleteTrainedModelRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        await self._registry.delete(principal(), request.name, request.etag)
        return empty_pb2.Empty()

    async def PublishTrainedModel(
        self, request: pb.PublishTrainedModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.TrainedModel:
        command = PublishTrainedModel(
            name=request.name,
            min_bbox_map=request.min_bbox_map,
            require_better_than_published=request.require_better_than_published,
            force=request.force,
        )
        return convert.model_to_proto(await self._registry.publication.publish(principal(), command))

    async def UnpublishTrainedModel(
        self, request: pb.UnpublishTrainedModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.TrainedModel:
        return convert.model_to_proto(await self._registry.publication.unpublish(principal(), request.name))

    async def SetModelAlias(
        self, request: pb.SetModelAliasRequest, context: grpc.aio.ServicerContext
    ) -> pb.TrainedModel:
        return convert.model_to_proto(
            await self._registry.publication.set_alias(principal(), request.name, request.alias)
        )

    async def DeleteModelAlias(
        self, request: pb.DeleteModelAliasRequest, context: grpc.aio.ServicerContext
    ) -> pb.TrainedModel:
        return convert.model_to_proto(
            await self._registry.publication.delete_alias(principal(), request.name, request.alias)
        )

    async def GetModelLineage(
        self, request: pb.GetModelLineageRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelLineage:
        return convert.lineage_to_proto(
            await self._registry.lineage(principal(), request.name, request.max_depth)
        )

    async def ImportTrainedModel(
        self, request: pb.ImportTrainedModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.TrainedModel:
        command = ImportTrainedModel(
            display_name=request.display_name,
            description=request.description,
            config_uri=request.config_uri,
            checkpoint_uri=request.checkpoint_uri,
            class_names=list(request.class_names),
            model_template=request.model_template,
            request_id=request.request_id,
        )
        return convert.model_to_proto(await self._registration.import_model(principal(), command))

    async def DownloadModelArtifact(
        self, request: pb.DownloadModelArtifactRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.DownloadModelArtifactResponse]:
        download = await self._registry.download(
            principal(), request.name, convert.artifact_kind(request.kind), request.offset,
            request.chunk_size, request.filename,
        )  # fmt: skip
        first: pb.DownloadModelArtifactResponse | None = pb.DownloadModelArtifactResponse(
            offset=request.offset,
            total_size=download.total_size,
            sha256=download.artifact.sha256,
            filename=download.artifact.filename,
        )
        async for offset, data in download.chunks:
            if first is not None:
                first.data = data
                first.offset = offset
                yield first
                first = None
            else:
                yield pb.DownloadModelArtifactResponse(data=data, offset=offset)
        if first is not None:  # nothing left after the offset: still say what the artifact is
            yield first

    async def GetTrainedModelStatistics(
        self, request: pb.GetTrainedModelStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> pb.TrainedModelStatistics:
        return convert.statistics_to_proto(await self._registry.statistics(principal(), request.name))
