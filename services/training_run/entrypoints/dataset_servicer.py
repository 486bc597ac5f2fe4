"""DatasetService servicer: translates protobuf ↔ use cases; no business rules here.

Errors are mapped to gRPC statuses by the interceptors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import empty_pb2

from common.auth import Permission
from common.errors import FieldViolation, InvalidArgument
from common.grpc_interceptors import principal
from common.proto.raven.v1 import datasets_pb2 as pb
from common.proto.raven.v1 import datasets_pb2_grpc
from services.training_run.adapters.dataset_feeds import DatasetVersionFeeds
from services.training_run.adapters.dataset_mapping import ARCHIVE_FORMATS, dataset_to_proto, version_to_proto
from services.training_run.adapters.dataset_snapshot import DatasetSnapshots
from services.training_run.entrypoints.grpc_servicer import resume_after
from services.training_run.service_layer import dataset_uploads
from services.training_run.service_layer.datasets import DatasetService, DatasetView, NewVersion

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DatasetService"].full_name
SERVICE = f"/{SERVICE_NAME}/"
REQUIRED_PERMISSIONS = {
    SERVICE + "CreateDataset": Permission.CREATE_DATASETS,
    SERVICE + "GetDataset": Permission.VIEW_DATASETS,
    SERVICE + "ListDatasets": Permission.VIEW_DATASETS,
    SERVICE + "DeleteDataset": Permission.DELETE_DATASETS,
    SERVICE + "CreateDatasetVersion": Permission.CREATE_DATASETS,
    SERVICE + "GetDatasetVersion": Permission.VIEW_DATASETS,
    SERVICE + "ListDatasetVersions": Permission.VIEW_DATASETS,
    SERVICE + "DeleteDatasetVersion": Permission.DELETE_DATASETS,
    SERVICE + "WatchDatasetVersion": Permission.VIEW_DATASETS,
    SERVICE + "UploadDatasetVersion": Permission.CREATE_DATASETS,
}


def _dataset(view: DatasetView) -> pb.Dataset:
    return dataset_to_proto(view.dataset, view.version_count, view.newest)


def _split_options(options: pb.SplitOptions) -> dict[str, Any]:
    return {f: getattr(options, f) for f in ("train_fraction", "val_fraction", "seed") if options.HasField(f)}


class DatasetServicer(datasets_pb2_grpc.DatasetServiceServicer):
    def __init__(
        self, service: DatasetService, snapshots: DatasetSnapshots, feeds: DatasetVersionFeeds
    ) -> None:
        self._service = service
        self._snapshots = snapshots
        self._feeds = feeds

    async def CreateDataset(self, request: pb.CreateDatasetRequest, context: Any) -> pb.Dataset:
        d = request.dataset
        view = await self._service.create_dataset(
            principal(), d.display_name, d.description, request.request_id
        )
        return _dataset(view)

    async def GetDataset(self, request: pb.GetDatasetRequest, context: Any) -> pb.Dataset:
        return _dataset(await self._service.get_dataset(principal(), request.name))

    async def ListDatasets(self, request: pb.ListDatasetsRequest, context: Any) -> pb.ListDatasetsResponse:
        views, token, total = await self._service.list_datasets(
            principal(), request.page_size, request.page_token
        )
        return pb.ListDatasetsResponse(
            datasets=[_dataset(v) for v in views], next_page_token=token, total_size=total
        )

    async def DeleteDataset(self, request: pb.DeleteDatasetRequest, context: Any) -> empty_pb2.Empty:
        await self._service.delete_dataset(principal(), request.name)
        return empty_pb2.Empty()

    async def CreateDatasetVersion(
        self, request: pb.CreateDatasetVersionRequest, context: Any
    ) -> pb.DatasetVersion:
        v = request.dataset_version
        new = NewVersion(
            parent=request.parent, description=v.description, split_options=_split_options(v.split_options),
            request_id=request.request_id, source_uri=v.source_uri,
        )  # fmt: skip
        version = await self._service.create_version(
            principal(), new, lambda: self._snapshots.from_uri(v.source_uri)
        )
        return version_to_proto(version)

    async def GetDatasetVersion(
        self, request: pb.GetDatasetVersionRequest, context: Any
    ) -> pb.DatasetVersion:
        return version_to_proto(await self._service.get_version(principal(), request.name))

    async def ListDatasetVersions(
        self, request: pb.ListDatasetVersionsRequest, context: Any
    ) -> pb.ListDatasetVersionsResponse:
        versions, token, total = await self._service.list_versions(
            principal(), request.parent, tuple(request.states), request.page_size, request.page_token
        )
        return pb.ListDatasetVersionsResponse(
            dataset_versions=[version_to_proto(v, full=False) for v in versions],
            next_page_token=token,
            total_size=total,
        )

    async def DeleteDatasetVersion(
        self, request: pb.DeleteDatasetVersionRequest, context: Any
    ) -> empty_pb2.Empty:
        await self._service.delete_version(principal(), request.name)
        return empty_pb2.Empty()

    async def WatchDatasetVersion(
        self, request: pb.WatchDatasetVersionRequest, context: Any
    ) -> AsyncIterator[pb.WatchDatasetVersionResponse]:
        after = resume_after(request.resume_token, "WatchDatasetVersion")
        async for event, version in self._service.watch(principal(), request.name, after, self._feeds.watch):
            yield pb.WatchDatasetVersionResponse(
                event=event, resume_token=str(event.sequence), dataset_version=version_to_proto(version)
            )

    async def UploadDatasetVersion(
        self, request_iterator: AsyncIterator[pb.UploadDatasetVersionRequest], context: Any
    ) -> pb.DatasetVersion:
        caller = principal()
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("content") != "metadata":
            raise InvalidArgument(
                "the first message of an upload must carry metadata (parent, size_bytes, sha256, format)",
                [FieldViolation("metadata", "must be set in the first message, and only there")],
            )
        m = first.metadata
        meta = dataset_uploads.UploadMetadata(
            parent=m.parent, size_bytes=m.size_bytes, sha256=m.sha256,
            archive_format=ARCHIVE_FORMATS.get(m.format, ""),
        )  # fmt: skip
        new = NewVersion(
            parent=m.parent, description=m.dataset_version.description,
            split_options=_split_options(m.dataset_version.split_options), request_id=m.request_id,
            upload={"size_bytes": m.size_bytes, "sha256": m.sha256.lower(), "format": meta.archive_format},
            field_prefix="metadata.",
        )  # fmt: skip
        version = await dataset_uploads.upload_version(
            self._service, self._snapshots, caller, meta, new, _chunks(request_iterator)
        )
        return version_to_proto(version)


async def _chunks(requests: AsyncIterator[pb.UploadDatasetVersionRequest]) -> AsyncIterator[bytes]:
    async for request in requests:
        if request.WhichOneof("content") != "chunk":
            raise InvalidArgument(
                "only the first message of an upload may carry metadata",
                [FieldViolation("metadata", "must be set in the first message, and only there")],
            )
        yield request.chunk
