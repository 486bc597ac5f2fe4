"""What an evaluation needs to know of a dataset version, asked of training_run's DatasetService.

training_run owns dataset versions; trained_model never reads its tables. ``GetDatasetVersion`` is asked with
a short-lived service identity (datasets.view + view_all): the caller's own visibility of the version was
already decided by the version existing for the owner of the evaluation (see ``service_layer.evaluations``).
"""

from __future__ import annotations

import abc
import functools
from dataclasses import dataclass, field

from common.artifacts import DATASET_BLOBS_PREFIX
from common.auth import Permission
from common.proto.raven.v1 import datasets_pb2, datasets_pb2_grpc, types_pb2
from services.trained_model.adapters.training_run_caller import TrainingRunCaller


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
    blob_prefix: str = DATASET_BLOBS_PREFIX

    @property
    def ready(self) -> bool:
        return self.state == "READY"


class DatasetVersions(abc.ABC):
    @abc.abstractmethod
    async def resolve(self, name: str) -> ResolvedVersion | None:
        """The version; None when it does not exist (or was deleted). Raises ``Unavailable``."""

    async def close(self) -> None:
        return None


def resolved_from_proto(version: datasets_pb2.DatasetVersion) -> ResolvedVersion:
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
    )


class GrpcDatasetVersions(TrainingRunCaller, DatasetVersions):
    """Asks ``GetDatasetVersion`` as the service (view and view_all datasets)."""

    permissions = (Permission.VIEW_DATASETS, Permission.VIEW_ALL_DATASETS)

    @functools.cached_property
    def _stub(self) -> datasets_pb2_grpc.DatasetServiceStub:
        return datasets_pb2_grpc.DatasetServiceStub(self._channel)

    async def resolve(self, name: str) -> ResolvedVersion | None:
        version: datasets_pb2.DatasetVersion | None = await self._find(
            self._stub.GetDatasetVersion,
            datasets_pb2.GetDatasetVersionRequest(name=name),
            what=f"cannot look up dataset version {name}",
            consequence="nothing was created",
        )
        return resolved_from_proto(version) if version is not None else None
