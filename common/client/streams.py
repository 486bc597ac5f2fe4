"""Resumable server-streaming watches: one loop for every Watch* RPC that carries a resume token.

The contract the servers share (WatchTrainingRun, WatchDatasetVersion): every response carries a resume token;
the stream ends with OK right after the terminal event; any other end is not the end, so the call is reopened
from the last token after a backoff.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from common.client.errors import RavenError
from common.client.retry import Failures, RetryPolicy

STREAM_RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})


class WatchResponse(Protocol):
    @property
    def resume_token(self) -> str: ...


R = TypeVar("R", bound=WatchResponse)


async def resumable_watch(
    open_call: Callable[[str], Any],
    *,
    resume_token: str,
    retry: RetryPolicy,
    is_terminal: Callable[[R], bool],
    sequence_of: Callable[[R], int],
    label: str,
    already_over: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncGenerator[R, None]:
    """Responses from ``resume_token`` on, ending after the terminal one.

    Args:
        open_call: opens the stream from a resume token (a grpc.aio call: async iterable with ``cancel()``).
        is_terminal: whether a response is the last one.
        sequence_of: a response's event sequence (0 = unknown); responses at or below the last seen one are
            skipped, so a server that replays inclusively yields no duplicates.
        label: names the watch in the error raised after ``retry.max_attempts`` failures in a row.
        already_over: asked after a clean end without the terminal response (the terminal event was before the
            resume token, or has expired): True ends the watch instead of reconnecting.
    """
    token = resume_token
    last_sequence = 0
    failures = Failures(retry)
    while True:
        call = open_call(token)
        problem = "the stream ended before the terminal event"
        try:
            async for response in call:
                failures.reset()
                sequence = sequence_of(response)
                if sequence and sequence <= last_sequence:
                    continue
                last_sequence = max(last_sequence, sequence)
                token = response.resume_token or token
                yield response
                if is_terminal(response):
                    return
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in STREAM_RETRY_CODES:
                raise RavenError.from_rpc_error(exc) from exc
            problem = f"{exc.code().name}: {exc.details()}"
        else:
            if already_over is not None and await already_over():
                return
        finally:
            call.cancel()
        if not await failures.failed():
            raise RavenError(
                grpc.StatusCode.UNAVAILABLE,
                f"{label} lost after {failures.count} tries ({problem}); resume token {token!r}",
            )
