"""TrainedModelService servicer: translates protobuf ↔ commands; no business rules here."""

from __future__ import annotations

from common.proto.raven.v1 import trained_model_pb2_grpc


class TrainedModelServicer(trained_model_pb2_grpc.TrainedModelServiceServicer):
    """Every RPC answers UNIMPLEMENTED until the service issue lands (inherited behaviour)."""
