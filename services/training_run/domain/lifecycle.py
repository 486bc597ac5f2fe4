"""The vocabulary of a run's lifecycle (AIP-216): states, phases, the allowed transitions and their errors.
Enum values equal the ``raven.v1`` proto numbers so adapters translate by value. Failure kinds and the failure
record are shared with the worker (``common.failures``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from common.errors import Aborted, FailedPrecondition
from common.failures import Failure as Failure  # the kinds and the record have one home
from common.failures import FailureKind as FailureKind


class RunState(IntEnum):
    UNSPECIFIED = 0
    PENDING = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLING = 5
    CANCELLED = 6

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})
LEASED_STATES = frozenset({RunState.RUNNING, RunState.CANCELLING})


class Phase(IntEnum):
    UNSPECIFIED = 0
    PREPARING_DATASET = 1
    TRAINING = 2
    EVALUATING = 3
    UPLOADING = 4


ALLOWED_TRANSITIONS: frozenset[tuple[RunState, RunState]] = frozenset({
    (RunState.UNSPECIFIED, RunState.PENDING),   # created
    (RunState.PENDING, RunState.RUNNING),       # claimed by a worker
    (RunState.PENDING, RunState.CANCELLED),     # cancelled before any worker took it
    (RunState.PENDING, RunState.FAILED),        # its job message was dead-lettered (poison)
    (RunState.RUNNING, RunState.PENDING),       # lease lost with attempts left, or released by the worker
    (RunState.RUNNING, RunState.SUCCEEDED),     # completed and the model registered
    (RunState.RUNNING, RunState.FAILED),        # failure reported, attempts exhausted, registration failed
    (RunState.RUNNING, RunState.CANCELLING),    # cancel requested
    (RunState.RUNNING, RunState.CANCELLED),     # the worker cancelled on its own
    (RunState.CANCELLING, RunState.CANCELLED),  # the worker stopped (or was lost while stopping)
    (RunState.CANCELLING, RunState.FAILED),     # the worker failed before it could stop cooperatively
})  # fmt: skip


class InvalidTransition(FailedPrecondition):
    """The run's state does not allow the requested change."""


class LeaseConflict(Aborted):
    """A worker call with a stale attempt, a foreign lease or an expired lease."""


@dataclass(frozen=True)
class Transition:
    from_state: RunState
    to_state: RunState
    time: datetime
    reason: str
    attempt: int


@dataclass(frozen=True)
class StartupGrace:
    """training_run (re)started at ``started``. While it was down no worker could heartbeat, so no lease is
    judged expired before ``until`` (at least one lease after start-up): a lease counts only the heartbeats
    received since the service came back, not the wall clock of the outage."""

    started: datetime
    until: datetime

    def covers(self, now: datetime) -> bool:
        return now < self.until
