"""The server interceptor: request id + logging context, auth, error mapping, Prometheus metrics.

It wraps the method handler's behaviour, so that its context (contextvars) is set in the task that runs
the handler.
"""

from __future__ import annotations

import collections
import contextvars
import inspect
import itertools
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
import structlog
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import Counter, Histogram

from common import errors
from common.auth import Principal, TokenVerifier
from common.sqlite_writers import database_busy

current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)
# A request id without one from the client: this process's random prefix and a counter (unique across
# replicas; uuid4 per call cost one getrandom syscall, a few percent of a GetTrainingRun).
_ID_PREFIX = f"{uuid.uuid4().hex[:16]}-"
_ids = itertools.count(1)


def _new_id_prefix() -> None:  # a forked child is another process: its own prefix
    global _ID_PREFIX
    _ID_PREFIX = f"{uuid.uuid4().hex[:16]}-"


os.register_at_fork(after_in_child=_new_id_prefix)
log = structlog.get_logger("grpc")

RPC_COUNT = Counter("raven_grpc_requests_total", "gRPC requests handled", ["method", "code"])
RPC_LATENCY = Histogram(
    "raven_grpc_request_seconds",
    "gRPC handling time (unary: whole call; streaming: until the stream ends)",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
)

Wrapper = Callable[[Callable[..., Any], grpc.HandlerCallDetails, bool], Callable[..., Any]]
SLOW_CALL_SECONDS = 1.0  # a unary call at least this slow is logged at INFO even when it succeeds
_CHILDREN: dict[tuple[str, str], tuple[Any, Any]] = {}  # (method, code) → its labelled metrics


def _observe(method: str, code: str, elapsed: float) -> None:
    children = _CHILDREN.get((method, code))
    if children is None:  # methods are the registered ones, codes a small enum: bounded
        children = _CHILDREN[(method, code)] = (RPC_COUNT.labels(method, code), RPC_LATENCY.labels(method))
    children[0].inc()
    children[1].observe(elapsed)


PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

_CODE_BY_ERROR: list[tuple[type[errors.AppError], grpc.StatusCode, int]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, code_pb2.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND, code_pb2.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS, code_pb2.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION, code_pb2.FAILED_PRECONDITION),
    (errors.Aborted, grpc.StatusCode.ABORTED, code_pb2.ABORTED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, code_pb2.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED, code_pb2.PERMISSION_DENIED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE, code_pb2.UNAVAILABLE),
]


def principal() -> Principal:
    """The authenticated caller of the current RPC (set by RpcInterceptor)."""
    value = current_principal.get()
    if value is None:
        raise errors.Unauthenticated("no authenticated caller")
    return value


def _passing_bytes(serialize: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """The method's serializer, except that a response the handler serialized itself (``bytes``: one rendering
    sent to many callers, e.g. a watch event to every watcher) goes out as it is."""
    if serialize is None or getattr(serialize, "passes_bytes", False):
        return serialize

    def serializer(message: Any) -> bytes:
        return message if type(message) is bytes else serialize(message)

    serializer.passes_bytes = True  # type: ignore[attr-defined]
    return serializer


def _writing(behavior: Callable[..., Any]) -> Callable[..., Awaitable[None]]:
    """A streaming behaviour as a coroutine that writes its responses itself (``context.write``), grpc's
    reader/writer form. An interceptor's stream wrapper is then a plain coroutine around it: a response passes
    through one generator (the servicer's), not one more per interceptor (three, awaited per message and per
    stream: a WatchTrainingRun event goes to every watcher). The servicer's generator is closed when the call
    ends, however it ends (it unregisters a watcher at once, not when garbage collected)."""
    if inspect.iscoroutinefunction(behavior):
        return behavior
    if inspect.isasyncgenfunction(behavior):

        async def write_async(request: Any, context: grpc.aio.ServicerContext) -> None:
            items = behavior(request, context)
            try:
                async for item in items:
                    await context.write(item)
            finally:
                await items.aclose()

        return write_async

    async def write_sync(request: Any, context: grpc.aio.ServicerContext) -> None:
        for item in behavior(request, context):
            await context.write(item)

    return write_sync


def _wrap(handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails, wrapper: Wrapper) -> Any:
    serializer = _passing_bytes(handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrapper(handler.unary_unary, details, False),
            request_deserializer=handler.request_deserializer,
            response_serializer=serializer,
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            wrapper(handler.unary_stream, details, True),
            request_deserializer=handler.request_deserializer,
            response_serializer=serializer,
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            wrapper(handler.stream_unary, details, False),
            request_deserializer=handler.request_deserializer,
            response_serializer=serializer,
        )
    return grpc.stream_stream_rpc_method_handler(
        wrapper(handler.stream_stream, details, True),
        request_deserializer=handler.request_deserializer,
        response_serializer=serializer,
    )


class _WrappingInterceptor(grpc.aio.ServerInterceptor):
    """Wraps each method's handler once: grpc asks the interceptors for a handler on every call, and building
    the wrappers (closures and a new handler tuple per interceptor) each time was a measurable part of a
    GetTrainingRun. A wrapping is reused while the handler below it is the same object (the servicer's are
    registered once; a method nobody registered has no handler and is never kept), so the cache is bounded by
    the registered methods. A wrapper may use ``details.method`` only, never per-call details."""

    _wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]]

    def wrapper(self, behavior: Callable[..., Any], details: grpc.HandlerCallDetails, streaming: bool) -> Any:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        try:
            wrapped = self._wrapped
        except AttributeError:
            wrapped = self._wrapped = {}
        method = handler_call_details.method
        found = wrapped.get(method)
        if found is not None and found[0] is handler:
            return found[1]
        result = _wrap(handler, handler_call_details, self.wrapper)
        wrapped[method] = (handler, result)
        return result


# Error texts may quote the caller's input. They travel in the trailers (grpc-message percent-encoded, the
# details base64) whose default limit is 8 KiB: an unbounded echo of a 100 kB name turned INVALID_ARGUMENT
# into RESOURCE_EXHAUSTED on the client. Bounded in UTF-8 bytes so that the whole status always fits.
MAX_MESSAGE_BYTES = 600
MAX_VIOLATIONS = 10
MAX_FIELD_BYTES = 100
MAX_DESCRIPTION_BYTES = 160


def _clip(text: str, limit: int) -> str:
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", "ignore") + "…"


def _status_for(exc: errors.AppError) -> status_pb2.Status:
    for cls, _, code in _CODE_BY_ERROR:
        if isinstance(exc, cls):
            status = status_pb2.Status(code=code, message=_clip(exc.message, MAX_MESSAGE_BYTES))
            if isinstance(exc, errors.InvalidArgument) and exc.violations:
                bad_request = error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=_clip(v.field, MAX_FIELD_BYTES),
                            description=_clip(v.description, MAX_DESCRIPTION_BYTES),
                        )
                        for v in exc.violations[:MAX_VIOLATIONS]
                    ]
                )
                detail = any_pb2.Any()
                detail.Pack(bad_request)
                status.details.append(detail)
            return status
    return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")


async def abort_with(context: grpc.aio.ServicerContext, exc: errors.AppError) -> None:
    await context.abort_with_status(rpc_status.to_status(_status_for(exc)))


async def _map_error(method: str, exc: Exception, context: grpc.aio.ServicerContext) -> None:
    """AppError → its status (with BadRequest details); a busy or lost database → UNAVAILABLE; else →
    INTERNAL, logged with its traceback."""
    if isinstance(exc, errors.AppError):
        await abort_with(context, exc)
    busy = database_busy(exc)
    if busy is not None:
        log.warning("database busy or lost", method=method, error=str(exc)[:200])
        await abort_with(context, busy)
    log.exception("unhandled error", method=method)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; see server logs")


def _is_abort(exc: BaseException) -> bool:
    # context.abort raises grpc.aio.AbortError: a subclass of BaseException in recent grpcio, of Exception
    # in older ones.
    return type(exc).__name__ == "AbortError"


class RpcInterceptor(_WrappingInterceptor):
    """Everything the server does around a handler, in one wrapper per method (three interceptors, each its
    own coroutine, contextvar juggling and metadata copy per call, were about 12% of a GetTrainingRun):

    * request id (from ``x-request-id`` or new), logging context, metrics and an access log line per RPC;
      ``open_streams`` counts the streaming calls in flight per method (what a stopping server waits for);
    * with a ``verifier``: authenticates every RPC except health and reflection and puts the Principal into a
      contextvar. ``required`` maps full method names to the permission they need; methods absent from it only
      need a valid token (the service checks finer rules itself, e.g. owner scoping);
    * with ``map_errors``: AppError → its status (with BadRequest details), anything else → INTERNAL, logged
      with its traceback.
    """

    def __init__(
        self,
        verifier: TokenVerifier | None = None,
        required: Mapping[str, str] | None = None,
        *,
        map_errors: bool = True,
    ) -> None:
        self._verifier = verifier
        self._required = dict(required or {})
        self._map_errors = map_errors
        self.open_streams: collections.Counter[str] = collections.Counter()

    def _authenticate(self, metadata: Mapping[str, Any], method: str) -> Principal:
        assert self._verifier is not None
        header = metadata.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if header and scheme.lower() != "bearer":
            raise errors.Unauthenticated("authorization metadata must be 'Bearer <jwt>'")
        found = self._verifier.verify(token.strip())
        needed = self._required.get(method)
        if needed:
            found.require(needed)
        return found

    def wrapper(self, behavior: Callable[..., Any], details: grpc.HandlerCallDetails, streaming: bool) -> Any:
        method = details.method
        public = method.startswith(PUBLIC_PREFIXES)
        authenticate = None if self._verifier is None or public else self._authenticate
        map_errors = self._map_errors
        open_streams = self.open_streams
        run = _writing(behavior) if streaming else behavior

        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            metadata = dict(context.invocation_metadata() or ())
            structlog.contextvars.clear_contextvars()
            request_id = str(metadata.get("x-request-id") or f"{_ID_PREFIX}{next(_ids):x}")
            structlog.contextvars.bind_contextvars(request_id=request_id, method=method)
            started = time.perf_counter()
            if streaming:
                open_streams[method] += 1
            token = None
            try:
                if authenticate is not None:
                    try:
                        found = authenticate(metadata, method)
                    except errors.AppError as exc:
                        await abort_with(context, exc)
                    token = current_principal.set(found)
                    structlog.contextvars.bind_contextvars(subject=found.subject)
                try:
                    return await run(request, context)
                except Exception as exc:
                    if not map_errors or _is_abort(exc):
                        raise
                    await _map_error(method, exc, context)
            finally:
                if token is not None:
                    current_principal.reset(token)
                if streaming:
                    open_streams[method] -= 1
                _access_log(context, method, public, streaming, started)

        return handler


class ContextInterceptor(RpcInterceptor):
    """The request id, logging context, metrics and access log alone (no auth, no error mapping)."""

    def __init__(self) -> None:
        super().__init__(map_errors=False)


def _access_log(
    context: grpc.aio.ServicerContext, method: str, public: bool, streaming: bool, started: float
) -> None:
    code = context.code() if hasattr(context, "code") else None
    name = code.name if isinstance(code, grpc.StatusCode) else "OK"
    elapsed = time.perf_counter() - started
    _observe(method, name, elapsed)
    if public:
        return
    # Every stream, failed or slow call at INFO; a quick successful unary call is in the metrics and at DEBUG:
    # rendering and writing its line cost more CPU than serving a GetTrainingRun.
    if streaming or name != "OK" or elapsed >= SLOW_CALL_SECONDS:
        log.info("rpc", code=name, ms=round(elapsed * 1000, 2))
    else:
        log.debug("rpc", code=name, ms=round(elapsed * 1000, 2))
