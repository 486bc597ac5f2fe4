"""Scripted faults shared by the fake servers: calls counted, delays, the first n calls UNAVAILABLE."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import grpc

from common import errors
from common.grpc_interceptors import principal


class Faults:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.fail_first: dict[str, int] = {}
        self.delay: dict[str, float] = {}
        self.time_remaining: dict[str, list[float | None]] = defaultdict(list)

    async def enter(self, method: str, context: grpc.aio.ServicerContext) -> None:
        principal()  # every fake RPC runs authenticated, like the real ones
        self.calls[method] += 1
        self.time_remaining[method].append(context.time_remaining())
        if self.delay.get(method):
            await asyncio.sleep(self.delay[method])
        if self.fail_first.get(method, 0) > 0:
            self.fail_first[method] -= 1
            raise errors.Unavailable(f"{method} is restarting")
