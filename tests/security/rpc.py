"""Generic calls to any RPC of the two services, derived from the proto descriptors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor, message, message_factory

from common.proto.raven.v1 import datasets_pb2, evaluations_pb2, trained_model_pb2, training_run_pb2

SERVICES = (
    training_run_pb2.DESCRIPTOR.services_by_name["TrainingRunService"],
    trained_model_pb2.DESCRIPTOR.services_by_name["TrainedModelService"],
    datasets_pb2.DESCRIPTOR.services_by_name["DatasetService"],
    evaluations_pb2.DESCRIPTOR.services_by_name["EvaluationService"],
)
# The services the trained_model server serves; every other one is served by the training_run server.
TRAINED_MODEL_SERVER = ("/raven.v1.TrainedModelService/", "/raven.v1.EvaluationService/")
# Worker (service identity) RPCs, by the naming the services use; every other RPC is a user RPC.
WORKER_METHODS = frozenset(
    f"/raven.v1.TrainingRunService/{m}"
    for m in ("ClaimTrainingRun", "HeartbeatTrainingRun", "ReleaseTrainingRun", "HeartbeatWorker")
)
# Operator RPCs: need the view-all claim (or superadmin), which an owner does not hold.
OPERATOR_METHODS = frozenset({"/raven.v1.TrainingRunService/ListWorkers"})


def all_methods() -> list[descriptor.MethodDescriptor]:
    return [m for service in SERVICES for m in service.methods]


def path(method: descriptor.MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def on_trained_model_server(method_path: str) -> bool:
    return method_path.startswith(TRAINED_MODEL_SERVER)


def request_class(method: descriptor.MethodDescriptor) -> type[message.Message]:
    return message_factory.GetMessageClass(method.input_type)


def response_class(method: descriptor.MethodDescriptor) -> type[message.Message]:
    return message_factory.GetMessageClass(method.output_type)


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str = ""
    responses: list[Any] = field(default_factory=list)
    status_details: bytes = b""  # grpc-status-details-bin (google.rpc.Status with BadRequest etc.)
    stream_open: bool = False  # a stream still open at the deadline (authorized, waiting for events)

    @property
    def ok(self) -> bool:
        return self.code == grpc.StatusCode.OK

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details!r}"


def _trailing(error: grpc.RpcError) -> bytes:
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            return bytes(value)
    return b""


def invoke(
    channel: grpc.Channel,
    method: descriptor.MethodDescriptor,
    request: message.Message,
    metadata: Any = (),
    *,
    timeout: float = 30.0,
    stream_timeout: float = 1.0,
    max_stream_items: int = 20,
    more: Sequence[message.Message] = (),
) -> Outcome:
    """Call ``method``; a server stream is read until it ends, ``max_stream_items`` or ``stream_timeout``."""
    response_type = response_class(method)
    serializer = type(request).SerializeToString
    if method.server_streaming:
        call = channel.unary_stream(path(method), serializer, response_type.FromString)
        responses: list[Any] = []
        stream = call(request, metadata=metadata, timeout=stream_timeout)
        try:
            for item in stream:
                responses.append(item)
                if len(responses) >= max_stream_items:
                    stream.cancel()
                    return Outcome(grpc.StatusCode.OK, responses=responses, stream_open=True)
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return Outcome(code, error.details() or "", responses, stream_open=True)  # type: ignore[attr-defined]
            return Outcome(code, error.details() or "", responses, _trailing(error))  # type: ignore[attr-defined]
        return Outcome(grpc.StatusCode.OK, responses=responses)
    if method.client_streaming:  # ``request`` is the first message, ``more`` the rest
        stream_call = channel.stream_unary(path(method), serializer, response_type.FromString)
        messages = [request, *more]
        try:
            return Outcome(
                grpc.StatusCode.OK,
                responses=[stream_call(iter(messages), metadata=metadata, timeout=timeout)],
            )
        except grpc.RpcError as error:
            return Outcome(error.code(), error.details() or "", [], _trailing(error))  # type: ignore[attr-defined]
    call = channel.unary_unary(path(method), serializer, response_type.FromString)
    try:
        return Outcome(grpc.StatusCode.OK, responses=[call(request, metadata=metadata, timeout=timeout)])
    except grpc.RpcError as error:
        return Outcome(error.code(), error.details() or "", [], _trailing(error))  # type: ignore[attr-defined]
