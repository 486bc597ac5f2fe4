"""Which gRPC status codes the client retries; the policy and the loop are :mod:`common.retry`'s."""

from __future__ import annotations

import grpc

from common.retry import NO_RETRY, Failures, RetryPolicy

__all__ = ["NO_RETRY", "READ_RETRY_CODES", "WRITE_RETRY_CODES", "Failures", "RetryPolicy"]

READ_RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# A write that timed out may have been applied; only UNAVAILABLE (never reached the handler, or the handler is
# idempotent by request_id) is retried for writes.
WRITE_RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})
