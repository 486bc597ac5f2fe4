"""The interceptors' per-RPC work: what is logged at which level; responses a handler serialized itself."""

from __future__ import annotations

from typing import Any

import grpc
from structlog.testing import capture_logs

from common.grpc_interceptors import ContextInterceptor, _passing_bytes
from common.proto.raven.v1 import training_run_pb2 as pb


class _Details:
    method = "/raven.v1.TrainingRunService/GetTrainingRun"


class _Context:
    def __init__(self, code: grpc.StatusCode | None = None) -> None:
        self._code = code

        self.written: list[Any] = []

    def invocation_metadata(self) -> tuple[()]:
        return ()

    async def write(self, message: Any) -> None:
        self.written.append(message)

    def code(self) -> grpc.StatusCode | None:
        return self._code


async def test_a_quick_successful_call_is_logged_at_debug_a_failed_or_slow_one_and_a_stream_at_info() -> None:
    interceptor = ContextInterceptor()

    async def handler(request: Any, context: Any) -> bytes:
        return b""

    async def stream(request: Any, context: Any) -> Any:
        yield b""

    unary = interceptor.wrapper(handler, _Details(), False)  # type: ignore[arg-type]
    streaming = interceptor.wrapper(stream, _Details(), True)  # type: ignore[arg-type]
    with capture_logs() as logs:
        await unary(None, _Context())
        await unary(None, _Context(grpc.StatusCode.NOT_FOUND))
        context = _Context()
        await streaming(None, context)  # a stream wrapper writes the servicer's responses itself
    assert context.written == [b""]
    found = [(entry["log_level"], entry["code"]) for entry in logs if entry["event"] == "rpc"]
    assert found == [("debug", "OK"), ("info", "NOT_FOUND"), ("info", "OK")]


async def test_a_slow_successful_call_is_logged_at_info(monkeypatch: Any) -> None:
    monkeypatch.setattr("common.grpc_interceptors.SLOW_CALL_SECONDS", 0.0)

    async def handler(request: Any, context: Any) -> bytes:
        return b""

    unary = ContextInterceptor().wrapper(handler, _Details(), False)  # type: ignore[arg-type]
    with capture_logs() as logs:
        await unary(None, _Context())
    assert [(e["log_level"], e["code"]) for e in logs if e["event"] == "rpc"] == [("info", "OK")]


def test_a_response_the_handler_serialized_itself_goes_out_as_it_is() -> None:
    message = pb.GetTrainingRunRequest(name="trainingRuns/x")
    serialize = _passing_bytes(pb.GetTrainingRunRequest.SerializeToString)
    assert serialize is not None
    assert serialize(message) == message.SerializeToString()
    assert serialize(b"already serialized") == b"already serialized"
    assert _passing_bytes(serialize) is serialize  # wrapped once, however many interceptors


async def test_a_method_is_wrapped_once_while_its_handler_stays_the_same() -> None:
    interceptor = ContextInterceptor()

    async def handler(request: Any, context: Any) -> bytes:
        return b""

    handlers = [grpc.unary_unary_rpc_method_handler(handler)]

    async def continuation(details: Any) -> Any:
        return handlers[-1]

    first = await interceptor.intercept_service(continuation, _Details())  # type: ignore[arg-type]
    assert await interceptor.intercept_service(continuation, _Details()) is first  # type: ignore[arg-type]
    handlers.append(grpc.unary_unary_rpc_method_handler(handler))  # e.g. registered again
    again = await interceptor.intercept_service(continuation, _Details())  # type: ignore[arg-type]
    assert again is not first and again.unary_unary is not first.unary_unary
