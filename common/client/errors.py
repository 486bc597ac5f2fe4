"""Client-side errors: one exception type carrying the gRPC status and its decoded rich details."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from common.errors import FieldViolation


class RavenError(Exception):
    """A failed call: the gRPC ``code``, the server's ``message`` and any ``BadRequest`` field violations."""

    def __init__(self, code: grpc.StatusCode, message: str, violations: list[FieldViolation] | None = None):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.violations = list(violations or [])

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> RavenError:
        """Decode an ``AioRpcError`` (or sync ``RpcError`` that is also a ``Call``)."""
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        message = (error.details() if hasattr(error, "details") else "") or ""
        return cls(code, message, _field_violations(error))


class IntegrityError(RavenError):
    """Downloaded bytes do not match what the server announced (size or sha256)."""

    def __init__(self, message: str):
        super().__init__(grpc.StatusCode.DATA_LOSS, message)


def _field_violations(error: grpc.RpcError) -> list[FieldViolation]:
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except (ValueError, AttributeError, TypeError):
        # A status whose code disagrees with the call's, or an error that is not a Call: no trusted details.
        return []
    if status is None:
        return []
    violations: list[FieldViolation] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(
                FieldViolation(field=v.field, description=v.description) for v in bad_request.field_violations
            )
    return violations
