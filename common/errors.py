"""Application errors shared by every service, free of gRPC.

Domain and service code raise these (or subclasses); the gRPC error interceptor turns each into exactly one
status code with a message a person can act on, and turns validation failures into
``google.rpc.BadRequest`` field violations.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class AppError(Exception):
    """Base of expected errors; never becomes INTERNAL."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(AppError):
    def __init__(self, message: str, violations: list[FieldViolation] | None = None) -> None:
        super().__init__(message)
        self.violations = list(violations or [])


class NotFound(AppError):
    pass


class AlreadyExists(AppError):
    pass


class FailedPrecondition(AppError):
    pass


class Aborted(AppError):
    """Concurrency conflict (stale etag, lost lease)."""


class Unauthenticated(AppError):
    pass


class PermissionDenied(AppError):
    pass


class Unavailable(AppError):
    pass


def require(violations: list[FieldViolation], message: str = "request has invalid fields") -> None:
    """Raise InvalidArgument when any violation was collected."""
    if violations:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations[:5])
        raise InvalidArgument(f"{message}: {summary}", violations)
