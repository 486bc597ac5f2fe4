"""What training_run needs from the trained_model service, behind an interface (gRPC in production)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format

from common.errors import NotFound, PermissionDenied, Unavailable
from common.proto.raven.v1 import trained_model_pb2, trained_model_pb2_grpc, types_pb2
from common.tls import ClientTLS, aio_channel


@dataclass(frozen=True)
class BaseModelInfo:
    name: str  # "trainedModels/{id}"
    published: bool
    class_names: tuple[str, ...]
    model_template: str
    checkpoint_key: str
    config_data: dict[str, Any] = field(default_factory=dict)
    dataset: str = ""  # what it was trained on: a dataset version's name or a plain dataset reference
    split_manifest_key: str = ""  # its training run's split manifest (SPLIT_MANIFEST artifact), if any


class TrainedModelClient(abc.ABC):
    @abc.abstractmethod
    async def get(self, name: str, metadata: Sequence[tuple[str, str]]) -> BaseModelInfo:
        """The model, or NotFound; ``metadata`` forwards the caller's authorization."""

    async def close(self) -> None:
        return None


class GrpcTrainedModelClient(TrainedModelClient):
    def __init__(self, address: str, timeout: float = 5.0, tls: ClientTLS | None = None) -> None:
        self._channel = aio_channel(address, tls)
        self._stub = trained_model_pb2_grpc.TrainedModelServiceStub(self._channel)
        self._timeout = timeout

    async def get(self, name: str, metadata: Sequence[tuple[str, str]]) -> BaseModelInfo:
        try:
            model = await self._stub.GetTrainedModel(
                trained_model_pb2.GetTrainedModelRequest(name=name),
                metadata=tuple(metadata),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise NotFound(f"base model {name!r} does not exist") from exc
            if code == grpc.StatusCode.PERMISSION_DENIED:
                raise PermissionDenied(f"not allowed to use base model {name!r}: {exc.details()}") from exc
            raise Unavailable(f"the trained_model service did not answer ({code.name}); retry later") from exc
        return BaseModelInfo(
            name=model.name or name,
            published=model.published,
            class_names=tuple(model.class_names),
            model_template=model.model_template,
            checkpoint_key=model.checkpoint.uri,
            config_data=json_format.MessageToDict(model.config) if model.HasField("config") else {},
            dataset=model.dataset,
            split_manifest_key=next(
                (a.uri for a in model.artifacts if a.kind == types_pb2.SPLIT_MANIFEST), ""
            ),
        )

    async def close(self) -> None:
        await self._channel.close()
