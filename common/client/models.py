# ruff: noqa: ASYNC109 - ``timeout`` is the gRPC deadline handed to each call, not an asyncio timeout.
"""``RavenClient``'s TrainedModelService methods."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import field_mask_pb2

from common.client.core import ClientCore
from common.client.download import DownloadResult, download_artifact
from common.proto.raven.v1 import trained_model_pb2, types_pb2


class TrainedModelMethods(ClientCore):
    # -- trained models --------------------------------------------------------------------------------------

    async def get_model(self, name: str, *, timeout: float | None = None) -> trained_model_pb2.TrainedModel:
        return await self._read(
            self._models.GetTrainedModel, trained_model_pb2.GetTrainedModelRequest(name=name), timeout
        )

    async def list_models(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        display_name: str = "",
        published: bool | None = None,
        base_model: str = "",
        dataset: str = "",
        model_template: str = "",
        min_bbox_map: float = 0.0,
        order_by: trained_model_pb2.ModelOrderBy | str = trained_model_pb2.MODEL_ORDER_BY_UNSPECIFIED,
        owner: str = "",
        timeout: float | None = None,
    ) -> trained_model_pb2.ListTrainedModelsResponse:
        request = trained_model_pb2.ListTrainedModelsRequest(
            page_size=page_size,
            page_token=page_token,
            display_name=display_name,
            base_model=base_model,
            dataset=dataset,
            model_template=model_template,
            min_bbox_map=min_bbox_map,
            order_by=order_by,
            owner=owner,
        )
        if published is not None:
            request.published = published
        return await self._read(self._models.ListTrainedModels, request, timeout)

    async def iter_models(self, **filters: Any) -> AsyncIterator[trained_model_pb2.TrainedModel]:
        """Every model matching ``list_models`` filters, following page tokens."""
        filters.pop("page_token", None)
        token = ""
        while True:
            page = await self.list_models(page_token=token, **filters)
            for model in page.trained_models:
                yield model
            token = page.next_page_token
            if not token:
                return

    async def update_model(
        self,
        trained_model: trained_model_pb2.TrainedModel,
        update_mask: Sequence[str],
        *,
        etag: str = "",
        timeout: float | None = None,
    ) -> trained_model_pb2.TrainedModel:
        request = trained_model_pb2.UpdateTrainedModelRequest(
            trained_model=trained_model,
            update_mask=field_mask_pb2.FieldMask(paths=list(update_mask)),
            etag=etag,
        )
        return await self._write(self._models.UpdateTrainedModel, request, timeout)

    async def delete_model(self, name: str, *, etag: str = "", timeout: float | None = None) -> None:
        request = trained_model_pb2.DeleteTrainedModelRequest(name=name, etag=etag)
        await self._write(self._models.DeleteTrainedModel, request, timeout)

    async def publish_model(
        self,
        name: str,
        *,
        min_bbox_map: float = 0.0,
        require_better_than_published: bool = False,
        force: bool = False,
        timeout: float | None = None,
    ) -> trained_model_pb2.TrainedModel:
        request = trained_model_pb2.PublishTrainedModelRequest(
            name=name,
            min_bbox_map=min_bbox_map,
            require_better_than_published=require_better_than_published,
            force=force,
        )
        return await self._write(self._models.PublishTrainedModel, request, timeout)

    async def unpublish_model(
        self, name: str, *, timeout: float | None = None
    ) -> trained_model_pb2.TrainedModel:
        request = trained_model_pb2.UnpublishTrainedModelRequest(name=name)
        return await self._write(self._models.UnpublishTrainedModel, request, timeout)

    async def set_model_alias(
        self, name: str, alias: str, *, timeout: float | None = None
    ) -> trained_model_pb2.TrainedModel:
        request = trained_model_pb2.SetModelAliasRequest(name=name, alias=alias)
        return await self._write(self._models.SetModelAlias, request, timeout)

    async def delete_model_alias(
        self, name: str, alias: str, *, timeout: float | None = None
    ) -> trained_model_pb2.TrainedModel:
        request = trained_model_pb2.DeleteModelAliasRequest(name=name, alias=alias)
        return await self._write(self._models.DeleteModelAlias, request, timeout)

    async def get_lineage(
        self, name: str, *, max_depth: int = 0, timeout: float | None = None
    ) -> trained_model_pb2.ModelLineage:
        request = trained_model_pb2.GetModelLineageRequest(name=name, max_depth=max_depth)
        return await self._read(self._models.GetModelLineage, request, timeout)

    async def get_model_statistics(
        self, name: str, *, timeout: float | None = None
    ) -> trained_model_pb2.TrainedModelStatistics:
        request = trained_model_pb2.GetTrainedModelStatisticsRequest(name=name)
        return await self._read(self._models.GetTrainedModelStatistics, request, timeout)

    async def import_model(
        self,
        *,
        display_name: str,
        config_uri: str,
        checkpoint_uri: str,
        class_names: Sequence[str] = (),
        model_template: str = "",
        description: str = "",
        request_id: str = "",
        timeout: float | None = None,
    ) -> trained_model_pb2.TrainedModel:
        """Register a root model from artifact-store keys; retried like Create (one request_id per call)."""
        request = trained_model_pb2.ImportTrainedModelRequest(
            display_name=display_name,
            description=description,
            config_uri=config_uri,
            checkpoint_uri=checkpoint_uri,
            class_names=list(class_names),
            model_template=model_template,
            request_id=request_id or str(uuid.uuid4()),
        )
        return await self._idempotent_write(self._models.ImportTrainedModel, request, timeout)

    async def download(
        self,
        model: str,
        kind: types_pb2.ArtifactKind | str,
        dest: str | Path,
        *,
        resume: bool = True,
        chunk_size: int = 0,
        filename: str = "",
    ) -> DownloadResult:
        """Download an artifact to ``dest`` (a file, or a directory to use the server's filename);
        ``filename`` picks one of several artifacts of a kind (PREDICTION_GALLERY).

        Bytes go to a ``.part`` file first; an interrupted download (this call's stream dropping, or an
        earlier process) continues from its size. The whole file is checked against the announced sha256 and
        size before it is renamed into place; a mismatch deletes the partial file, raising ``IntegrityError``.
        """

        def open_stream(offset: int) -> Any:
            request = trained_model_pb2.DownloadModelArtifactRequest(
                name=model, kind=kind, offset=offset, chunk_size=chunk_size, filename=filename
            )
            return self._models.DownloadModelArtifact(
                request, timeout=self.download_timeout, metadata=self.metadata()
            )

        return await download_artifact(open_stream, model, kind, Path(dest), resume=resume, retry=self.retry)
