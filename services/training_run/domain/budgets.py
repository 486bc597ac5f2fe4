"""A run's time budgets, as plain Python: ``max_runtime`` bounds the time it spends RUNNING (over all its
attempts, queue time excluded), ``max_pending`` each wait in the queue.

The worker enforces ``max_runtime`` (it stops training, checkpoints, evaluates and registers: the run still
succeeds); training_run hands it the time left at each claim (:func:`runtime_used`). ``max_pending`` is
training_run's alone: each time the run enters PENDING it gets a deadline (:func:`pending_deadline`) that the
reaper's one query finds once it has passed (:func:`pending_timeout`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from services.training_run.domain.lifecycle import LEASED_STATES, Failure, FailureKind, Transition

MIN_SECONDS = 1.0
MAX_SECONDS = 30 * 24 * 3600.0  # 30 days


def budget_problem(seconds: float | None) -> str | None:
    """What is wrong with a budget (None: unset, or fine), in words a person can act on."""
    if seconds is None:
        return None
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        return f"must be between 1s and 30 days, got {describe(seconds)}"
    return None


def runtime_used(transitions: Iterable[Transition], now: datetime) -> timedelta:
    """The time spent leased (RUNNING or CANCELLING) over every attempt, up to ``now`` while still leased."""
    total = timedelta(0)
    since: datetime | None = None
    for item in transitions:
        leased = item.to_state in LEASED_STATES
        if leased and since is None:
            since = item.time
        elif not leased and since is not None:
            total += item.time - since
            since = None
    if since is not None:
        total += max(now - since, timedelta(0))
    return total


def pending_deadline(max_pending_seconds: float | None, now: datetime) -> datetime | None:
    """When a run entering PENDING at ``now`` has waited too long; None without a budget."""
    return None if max_pending_seconds is None else now + timedelta(seconds=max_pending_seconds)


def pending_timeout(max_pending_seconds: float) -> Failure:
    """The failure of a run that no worker took within ``max_pending``."""
    return Failure(
        FailureKind.TIMED_OUT,
        f"no worker took the run within its max_pending of {describe(max_pending_seconds)}; check that "
        "workers able to train it are running (ListWorkers shows them and the queue), or raise max_pending",
    )


def describe(seconds: float) -> str:
    """``90`` → ``1m30s``; ``7200`` → ``2h``; fractions of a second kept as given (``0.5s``)."""
    if seconds < 1 or seconds != int(seconds):
        return f"{seconds:g}s"
    left, parts = int(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts)
