# ruff: noqa: ASYNC109 - ``timeout`` is the gRPC deadline handed to each call, not an asyncio timeout.
"""``RavenClient``'s DatasetService methods (served by the training_run server)."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import grpc

from common.client.core import ClientCore
from common.client.errors import RavenError
from common.client.retry import WRITE_RETRY_CODES, Failures
from common.client.streams import resumable_watch
from common.client.upload import CHUNK_SIZE, Progress, prepare_archive, upload_requests
from common.proto.raven.v1 import datasets_pb2 as pb

FINAL_VERSION_STATES = frozenset({pb.DATASET_VERSION_STATE_READY, pb.DATASET_VERSION_STATE_INVALID})


def is_final_version_event(response: pb.WatchDatasetVersionResponse) -> bool:
    """The server ends a version's watch after the state_changed event into READY or INVALID."""
    event = response.event
    return event.HasField("state_changed") and event.state_changed.to_state in FINAL_VERSION_STATES


class DatasetMethods(ClientCore):
    # -- datasets --------------------------------------------------------------------------------------------

    async def create_dataset(
        self, display_name: str, *, description: str = "", request_id: str = "", timeout: float | None = None
    ) -> pb.Dataset:
        """Retried on UNAVAILABLE with one request_id (made when not given): never created twice."""
        request = pb.CreateDatasetRequest(
            dataset=pb.Dataset(display_name=display_name, description=description),
            request_id=request_id or str(uuid.uuid4()),
        )
        return await self._idempotent_write(self._datasets.CreateDataset, request, timeout)

    async def get_dataset(self, name: str, *, timeout: float | None = None) -> pb.Dataset:
        return await self._read(self._datasets.GetDataset, pb.GetDatasetRequest(name=name), timeout)

    async def list_datasets(
        self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> pb.ListDatasetsResponse:
        request = pb.ListDatasetsRequest(page_size=page_size, page_token=page_token)
        return await self._read(self._datasets.ListDatasets, request, timeout)

    async def iter_datasets(self, *, page_size: int = 0) -> AsyncIterator[pb.Dataset]:
        token = ""
        while True:
            page = await self.list_datasets(page_size=page_size, page_token=token)
            for dataset in page.datasets:
                yield dataset
            token = page.next_page_token
            if not token:
                return

    async def delete_dataset(self, name: str, *, timeout: float | None = None) -> None:
        await self._write(self._datasets.DeleteDataset, pb.DeleteDatasetRequest(name=name), timeout)

    # -- versions --------------------------------------------------------------------------------------------

    async def create_dataset_version(
        self,
        parent: str,
        source_uri: str,
        *,
        description: str = "",
        split_options: pb.SplitOptions | None = None,
        request_id: str = "",
        timeout: float | None = None,
    ) -> pb.DatasetVersion:
        """Snapshot the COCO dataset at ``source_uri`` (an fsspec URL) as a new version of ``parent``."""
        version = pb.DatasetVersion(
            source_uri=source_uri, description=description, split_options=split_options
        )
        request = pb.CreateDatasetVersionRequest(
            parent=parent, dataset_version=version, request_id=request_id or str(uuid.uuid4())
        )
        # Snapshotting hashes and copies every file: the default deadline of a read is too short for it.
        deadline = timeout or max(self.timeout, self.download_timeout)
        return await self._idempotent_write(self._datasets.CreateDatasetVersion, request, deadline)

    async def upload_dataset_version(
        self,
        parent: str,
        path: Path | str,
        *,
        description: str = "",
        split_options: pb.SplitOptions | None = None,
        request_id: str = "",
        chunk_size: int = CHUNK_SIZE,
        on_progress: Progress | None = None,
        timeout: float | None = None,
    ) -> pb.DatasetVersion:
        """Upload a zip or tar of a COCO dataset, or its directory (archived first), as a version of parent.

        The archive's size and sha256 go first; the server checks both. Retried from the start on UNAVAILABLE
        with one request_id, so a retried upload makes one version. ``on_progress(sent, total)`` follows the
        bytes sent; ``timeout`` bounds each attempt (default: ``download_timeout``).
        """
        request_id = request_id or str(uuid.uuid4())
        with tempfile.TemporaryDirectory(prefix="raven-upload-") as scratch:
            archive = await asyncio.to_thread(prepare_archive, Path(path), Path(scratch))
            metadata = pb.UploadDatasetVersionMetadata(
                parent=parent,
                dataset_version=pb.DatasetVersion(description=description, split_options=split_options),
                size_bytes=archive.size,
                sha256=archive.sha256,
                format=archive.format,
                request_id=request_id,
            )
            failures = Failures(self.retry)
            while True:
                requests = upload_requests(metadata, archive, chunk_size, on_progress)
                try:
                    return await self._datasets.UploadDatasetVersion(
                        requests,
                        timeout=timeout or max(self.timeout, self.download_timeout),
                        metadata=self.metadata(request_id),
                    )
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in WRITE_RETRY_CODES or not await failures.failed():
                        raise RavenError.from_rpc_error(exc) from exc

    async def get_dataset_version(self, name: str, *, timeout: float | None = None) -> pb.DatasetVersion:
        request = pb.GetDatasetVersionRequest(name=name)
        return await self._read(self._datasets.GetDatasetVersion, request, timeout)

    async def list_dataset_versions(
        self,
        parent: str,
        *,
        page_size: int = 0,
        page_token: str = "",
        states: Iterable[pb.DatasetVersionState | str] = (),
        timeout: float | None = None,
    ) -> pb.ListDatasetVersionsResponse:
        request = pb.ListDatasetVersionsRequest(
            parent=parent, page_size=page_size, page_token=page_token, states=list(states)
        )
        return await self._read(self._datasets.ListDatasetVersions, request, timeout)

    async def iter_dataset_versions(self, parent: str, **filters: Any) -> AsyncIterator[pb.DatasetVersion]:
        filters.pop("page_token", None)
        token = ""
        while True:
            page = await self.list_dataset_versions(parent, page_token=token, **filters)
            for version in page.dataset_versions:
                yield version
            token = page.next_page_token
            if not token:
                return

    async def delete_dataset_version(self, name: str, *, timeout: float | None = None) -> None:
        await self._write(
            self._datasets.DeleteDatasetVersion, pb.DeleteDatasetVersionRequest(name=name), timeout
        )

    async def watch_dataset_version(
        self, name: str, resume_token: str = "", *, timeout: float | None = None
    ) -> AsyncGenerator[pb.WatchDatasetVersionResponse, None]:
        """A version's preparation events from ``resume_token`` on, ending after it turns READY or INVALID.

        Reconnects as ``watch`` does. A stream that ends cleanly before the final event (the version was final
        before ``resume_token``) ends the watch when the version is READY or INVALID.
        """

        def open_call(token: str) -> Any:
            request = pb.WatchDatasetVersionRequest(name=name, resume_token=token)
            return self._datasets.WatchDatasetVersion(request, timeout=timeout, metadata=self.metadata())

        async def already_over() -> bool:
            return (await self.get_dataset_version(name)).state in FINAL_VERSION_STATES

        stream = resumable_watch(
            open_call,
            resume_token=resume_token,
            retry=self.retry,
            is_terminal=is_final_version_event,
            sequence_of=lambda r: r.event.sequence,
            label=f"watch of {name}",
            already_over=already_over,
        )
        async with aclosing(stream):  # the caller's aclose() reaches the open call at once
            async for response in stream:
                yield response
