"""What an evaluation needs to know of a dataset version, asked of training_run's DatasetService.

training_run owns dataset versions; trained_model never reads its tables. ``GetDatasetVersion`` is asked with
a short-lived service identity (datasets.view + view_all): the caller's own visibility of the version was
already decided by the version existing for the owner of the evaluation (see ``service_layer.evaluations``).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import grpc

from common.auth import Permission, ServiceToken
from common.errors import Unavailable
from common.proto.raven.v1 import datasets_pb2, datasets_pb2_grpc, types_pb2
from common.tls import ClientTLS, aio_channel

SERVICE_SUBJECT = "service:trained-model"
# Where training_run stores a version's files by sha256 (its snapshot's blob prefix; the TrainingJob carries
# the same value). DatasetVersion does not expose it.
BLOB_PREFIX = "dataset_blobs"


@dataclass(frozen=True)
class ResolvedVersion:
    name: str
    state: str  # "READY", "PENDING", "PREPARING", "INVALID"
    owner: str
    class_names: list[str] = field(default_factory=list)
    split_images: dict[str, int] = field(default_factory=dict)
    snapshot_sha256: str = ""
    split_sha256: str = ""
    split_manifest: types_pb2.Artifact | None = None
    file_manifest: types_pb2.Artifact | None = None
    blob_prefix: str = BLOB_PREFIX

    @property
    def ready(self) -> bool:
        return self.state == "READY"


class DatasetVersions(abc.ABC):
    @abc.abstractmethod
    async def resolve(self, name: str) -> ResolvedVersion | None:
        """The version; None when it does not exist (or was deleted). Raises ``Unavailable``."""

    async def close(self) -> None:
        return None


def resolved_from_proto(
    version: datasets_pb2.DatasetVersion, blob_prefix: str = BLOB_PREFIX
) -> ResolvedVersion:
    state = datasets_pb2.DatasetVersionState.Name(version.state).removeprefix("DATASET_VERSION_STATE_")
    return ResolvedVersion(
        name=version.name,
        state=state,
        owner=version.owner,
        class_names=[c.class_name for c in version.profile.classes],
        split_images={s.split: s.images for s in version.split.splits},
        snapshot_sha256=version.snapshot_sha256,
        split_sha256=version.split_sha256,
        split_manifest=version.split_manifest if version.HasField("split_manifest") else None,
        file_manifest=version.file_manifest if version.HasField("file_manifest") else None,
        blob_prefix=blob_prefix,
    )


class GrpcDatasetVersions(DatasetVersions):
    def __init__(
        self,
        address: str,
        *,
        secret: str = "",
        private_key: str = "",
        audience: str = "raven",
        issuer: str = "raven",
        timeout: float = 5.0,
        tls: ClientTLS | None = None,
        blob_prefix: str = BLOB_PREFIX,
    ) -> None:
        self._channel = aio_channel(address, tls)
        self._stub = datasets_pb2_grpc.DatasetServiceStub(self._channel)
        self._address = address
        self._blob_prefix = blob_prefix
        self._token = ServiceToken(
            SERVICE_SUBJECT,
            [Permission.VIEW_DATASETS, Permission.VIEW_ALL_DATASETS],
            secret=secret,
            private_key=private_key,
            audience=audience,
            issuer=issuer,
        )
        self._timeout = timeout

    async def resolve(self, name: str) -> ResolvedVersion | None:
        request = datasets_pb2.GetDatasetVersionRequest(name=name)
        try:
            version = await self._stub.GetDatasetVersion(
                request, metadata=(("authorization", f"Bearer {self._token()}"),), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise Unavailable(
                f"cannot look up dataset version {name} (training_run at {self._address} answered "
                f"{exc.code().name}); nothing was created, retry later"
            ) from exc
        return resolved_from_proto(version, self._blob_prefix)

    async def close(self) -> None:
        await self._channel.close()
