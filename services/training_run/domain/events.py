"""Domain events a run records as it changes; the unit of work writes them to the outbox in the same
transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.training_run.domain.lifecycle import RunState


@dataclass(frozen=True)
class StateChanged:
    run_id: str
    attempt: int
    from_state: RunState
    to_state: RunState
    reason: str
    time: datetime
    index: int  # position in the run's transition history: makes the published event's id deterministic


@dataclass(frozen=True)
class JobRequested:
    run_id: str
    attempt: int


@dataclass(frozen=True)
class CancelRequested:
    run_id: str
    attempt: int
    reason: str


DomainEvent = StateChanged | JobRequested | CancelRequested
