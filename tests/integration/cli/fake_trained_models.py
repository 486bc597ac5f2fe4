"""The fake TrainedModelService and the artifacts it serves (see fakes.py)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from common import errors
from common.grpc_interceptors import principal
from common.proto.raven.v1 import trained_model_pb2, trained_model_pb2_grpc, types_pb2
from tests.integration.cli.faults import Faults


@dataclass
class StoredArtifact:
    data: bytes
    filename: str
    sha256: str = ""

    def __post_init__(self) -> None:
        self.sha256 = self.sha256 or hashlib.sha256(self.data).hexdigest()


class FakeTrainedModels(trained_model_pb2_grpc.TrainedModelServiceServicer):
    def __init__(self) -> None:
        self.faults = Faults()
        self.models: dict[str, trained_model_pb2.TrainedModel] = {}
        self.artifacts: dict[tuple[str, int], StoredArtifact] = {}
        self.download_offsets: list[int] = []
        self.download_drops: list[int] = []  # per download call: chunks sent before UNAVAILABLE
        self.stats: dict[str, trained_model_pb2.TrainedModelStatistics] = {}

    def add(self, model: trained_model_pb2.TrainedModel) -> trained_model_pb2.TrainedModel:
        self.models[model.name] = model
        return model

    def _get(self, name: str) -> trained_model_pb2.TrainedModel:
        if name not in self.models:
            raise errors.NotFound(f"trained model {name!r} not found")
        return self.models[name]

    async def GetTrainedModel(self, request: Any, context: Any) -> trained_model_pb2.TrainedModel:
        await self.faults.enter("GetTrainedModel", context)
        return self._get(request.name)

    async def ListTrainedModels(
        self, request: Any, context: Any
    ) -> trained_model_pb2.ListTrainedModelsResponse:
        await self.faults.enter("ListTrainedModels", context)
        models = [
            m
            for m in self.models.values()
            if not request.HasField("published") or m.published == request.published
        ]
        return trained_model_pb2.ListTrainedModelsResponse(trained_models=models, total_size=len(models))

    async def PublishTrainedModel(self, request: Any, context: Any) -> trained_model_pb2.TrainedModel:
        await self.faults.enter("PublishTrainedModel", context)
        model = self._get(request.name)
        if not request.force and model.evaluation.val.bbox_map < request.min_bbox_map:
            raise errors.FailedPrecondition(
                f"bbox mAP {model.evaluation.val.bbox_map:.3f} is below the gate {request.min_bbox_map:.3f}"
            )
        model.published = True
        model.published_by = principal().subject
        return model

    async def UnpublishTrainedModel(self, request: Any, context: Any) -> trained_model_pb2.TrainedModel:
        await self.faults.enter("UnpublishTrainedModel", context)
        model = self._get(request.name)
        model.published = False
        return model

    def _node(self, model: trained_model_pb2.TrainedModel, depth: int) -> trained_model_pb2.LineageNode:
        return trained_model_pb2.LineageNode(
            trained_model=model.name,
            display_name=model.display_name,
            version=model.version,
            base_model=model.base_model,
            training_run=model.training_run,
            dataset=model.dataset,
            bbox_map=model.evaluation.val.bbox_map,
            published=model.published,
            depth=depth,
        )

    async def GetModelLineage(self, request: Any, context: Any) -> trained_model_pb2.ModelLineage:
        await self.faults.enter("GetModelLineage", context)
        model = self._get(request.name)
        ancestors, parent, depth = [], model.base_model, -1
        while parent in self.models:
            ancestors.append(self._node(self.models[parent], depth))
            parent, depth = self.models[parent].base_model, depth - 1
        children = [self._node(m, 1) for m in self.models.values() if m.base_model == model.name]
        return trained_model_pb2.ModelLineage(
            model=self._node(model, 0), ancestors=ancestors, descendants=children
        )

    async def ImportTrainedModel(self, request: Any, context: Any) -> trained_model_pb2.TrainedModel:
        await self.faults.enter("ImportTrainedModel", context)
        return self.add(
            trained_model_pb2.TrainedModel(
                name=f"trainedModels/imported-{len(self.models) + 1}",
                display_name=request.display_name,
                version=1,
                class_names=request.class_names,
                model_template=request.model_template,
            )
        )

    async def GetTrainedModelStatistics(self, request: Any, context: Any) -> Any:
        await self.faults.enter("GetTrainedModelStatistics", context)
        model = self._get(request.name)
        return self.stats.get(model.name) or trained_model_pb2.TrainedModelStatistics(
            trained_model=model.name, evaluation=model.evaluation, training_seconds=model.training_seconds
        )

    async def DownloadModelArtifact(self, request: Any, context: Any) -> AsyncIterator[Any]:
        await self.faults.enter("DownloadModelArtifact", context)
        self._get(request.name)
        artifact = self.artifacts.get((request.name, request.kind or types_pb2.CHECKPOINT))
        if artifact is None:
            raise errors.NotFound(
                f"{request.name} has no {types_pb2.ArtifactKind.Name(request.kind)} artifact"
            )
        if request.offset > len(artifact.data):
            raise errors.InvalidArgument("offset is past the end of the artifact")
        self.download_offsets.append(request.offset)
        size = request.chunk_size or 1024
        drop_after = self.download_drops.pop(0) if self.download_drops else -1
        for sent, offset in enumerate(range(request.offset, len(artifact.data), size)):
            if sent == drop_after:
                raise errors.Unavailable("artifact store connection reset")
            first = sent == 0
            yield trained_model_pb2.DownloadModelArtifactResponse(
                data=artifact.data[offset : offset + size],
                offset=offset,
                total_size=len(artifact.data) if first else 0,
                sha256=artifact.sha256 if first else "",
                filename=artifact.filename if first else "",
            )
