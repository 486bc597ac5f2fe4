"""A blocking facade over ``RavenClient`` for scripts and sync code: same methods, run on a private loop."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from common.client.client import RavenClient


class SyncRavenClient:
    """``with SyncRavenClient(addr1, addr2, token=...) as client: client.get_run(name)``.

    Coroutine methods block until done; async-generator methods (``watch``, ``watch_all``, ``iter_runs``,
    ``iter_models``) become plain generators. Takes the same arguments as ``RavenClient``. Not for use from
    inside a running event loop (use ``RavenClient`` there).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._runner = asyncio.Runner()
        self._client = RavenClient(*args, **kwargs)

    def __enter__(self) -> SyncRavenClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._runner.run(self._client.close())
        finally:
            self._runner.close()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        if inspect.isasyncgenfunction(method):
            return lambda *args, **kwargs: self._iterate(method(*args, **kwargs))
        if inspect.iscoroutinefunction(method):
            return lambda *args, **kwargs: self._runner.run(method(*args, **kwargs))
        return method  # type: ignore[no-any-return]

    def _iterate(self, agen: Any) -> Iterator[Any]:
        try:
            while True:
                try:
                    yield self._runner.run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._runner.run(agen.aclose())
