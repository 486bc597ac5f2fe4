"""Retries: one policy (exponential backoff, full jitter by default) and one loop helper for every caller.

Used by the client library (:mod:`common.client`: unary calls, watch reconnects, download resumes), by the
trainer worker's terminal-event publisher and by every optimistic-concurrency loop of the services
(:data:`CONFLICTS`: a conflicting write is tried again at once from a fresh read). :class:`Failures` is the
loop: it counts failures in a row, sleeps the backoff before the next try and says when to give up. Unary
gRPC calls of the client keep this loop rather than grpc's service-config ``retryPolicy``: that policy's
deadline spans every attempt, while the client gives each attempt a fresh deadline and retries a read whose
deadline expired.

Plain Python: no grpc or nats import.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a repeatable operation is tried.

    Attributes:
        max_attempts: total tries of one call, the first included (1 = no retry).
        initial_backoff: upper bound of the first sleep, seconds.
        max_backoff: cap of the bound, seconds.
        multiplier: growth of the bound per attempt.
        jitter: sleep uniformly in [0, bound] (many clients retrying at once spread out); False sleeps the
            bound itself.
        rng: source of jitter (tests pass a seeded one).
    """

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: bool = True
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, retry_number: int) -> float:
        """Sleep before retry ``retry_number`` (1-based): uniform in [0, min(cap, initial * mult**(n-1))]."""
        bound = min(self.max_backoff, self.initial_backoff * self.multiplier ** max(0, retry_number - 1))
        return self.rng.uniform(0, bound) if self.jitter else bound

    @classmethod
    def at_once(cls, max_attempts: int) -> RetryPolicy:
        """Retries without a sleep: for a conflict, where the next try reads afresh and needs no wait."""
        return cls(max_attempts=max_attempts, initial_backoff=0.0, jitter=False)


NO_RETRY = RetryPolicy(max_attempts=1)
# A write that lost an optimistic-concurrency race (a run's version, a model's version number or unique
# row): 8 tries in all, each from a fresh read, no sleep in between.
CONFLICTS = RetryPolicy.at_once(8)


class Failures:
    """Failures in a row of one logical call or stream under a :class:`RetryPolicy`.

    ``await failures.failed()`` counts one and sleeps the backoff before the next try; it answers False, at
    once, when the policy's attempts are used up (no sleep when the backoff is 0). ``reset()`` after progress
    (a stream's event, a download's chunk).
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
        delay = self._policy.backoff(self.count)
        if delay > 0:
            await asyncio.sleep(delay)
        return True
