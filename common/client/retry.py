"""Retry policy: exponential backoff with full jitter, applied only to calls that are safe to repeat.

:class:`Failures` is the one retry loop of the client: unary calls (a fresh deadline per attempt, so a read
that timed out is tried again, which grpc's service-config ``retryPolicy`` cannot do: its deadline spans every
attempt), and the reconnects of streams and downloads, where progress resets the count.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import grpc

READ_RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# A write that timed out may have been applied; only UNAVAILABLE (never reached the handler, or the handler is
# idempotent by request_id) is retried for writes.
WRITE_RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently idempotent calls are repeated.

    Attributes:
        max_attempts: total tries of one call, the first included (1 = no retry).
        initial_backoff: upper bound of the first sleep, seconds.
        max_backoff: cap of the bound, seconds.
        multiplier: growth of the bound per attempt.
        rng: source of jitter (tests pass a seeded one).
    """

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, retry_number: int) -> float:
        """Sleep before retry ``retry_number`` (1-based): uniform in [0, min(cap, initial * mult**(n-1))]."""
        bound = min(self.max_backoff, self.initial_backoff * self.multiplier ** max(0, retry_number - 1))
        return self.rng.uniform(0, bound)


NO_RETRY = RetryPolicy(max_attempts=1)


class Failures:
    """Failures in a row of one logical call or stream under a :class:`RetryPolicy`.

    ``await failures.failed()`` counts one and sleeps the backoff before the next try; it answers False, at
    once, when the policy's attempts are used up. ``reset()`` after progress (a stream's event, a download's
    chunk).
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self.count = 0

    def reset(self) -> None:
        self.count = 0

    async def failed(self) -> bool:
        self.count += 1
        if self.count >= self._policy.max_attempts:
            return False
        await asyncio.sleep(self._policy.backoff(self.count))
        return True
