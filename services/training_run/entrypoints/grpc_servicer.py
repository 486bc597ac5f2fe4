"""TrainingRunService servicer: translates protobuf ↔ commands; no business rules here."""

from __future__ import annotations

from common.proto.raven.v1 import training_run_pb2_grpc


class TrainingRunServicer(training_run_pb2_grpc.TrainingRunServiceServicer):
    """Every RPC answers UNIMPLEMENTED until the service issue lands (inherited behaviour)."""
