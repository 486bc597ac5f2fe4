"""One job's rules, as plain Python: why work stops, how the job message is settled, what gets published when.

Nothing here talks to NATS, gRPC or mmdet; the adapters and entrypoints ask these objects what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

TERMINAL_KINDS = ("completed", "failed", "cancelled")


class StopReason(StrEnum):
    """Why a job stops before it finishes by itself."""

    CANCELLED = "cancelled"  # the user cancelled the run (heartbeat flag or control message)
    SHUTDOWN = "shutdown"  # this worker is going away (SIGTERM): checkpoint, release, let another resume
    LEASE_LOST = "lease_lost"  # training_run fenced this attempt off: stop, publish nothing


class Settlement(StrEnum):
    """What happens to the JetStream job message at the end."""

    ACK = "ack"  # a terminal event is durably published: the job is done
    NAK = "nak"  # let it be redelivered; the next claim (or training_run) decides what happens
    TERM = "term"  # the message can never be worked on (claim refused, unreadable payload)


class StopSignal:
    """The first stop request wins, except that a lost lease overrides all: nothing may be published then."""

    def __init__(self) -> None:
        self.reason: StopReason | None = None
        self.detail = ""

    def request(self, reason: StopReason, detail: str = "") -> bool:
        """Record a stop request; returns True when it changed the reason."""
        if self.reason is None or (
            reason is StopReason.LEASE_LOST and self.reason is not StopReason.LEASE_LOST
        ):
            self.reason = reason
            self.detail = detail
            return True
        return False

    @property
    def requested(self) -> bool:
        return self.reason is not None

    @property
    def may_publish_terminal(self) -> bool:
        return self.reason is not StopReason.LEASE_LOST


def settlement_after(terminal_published: bool) -> Settlement:
    """How to settle the message of a claimed job once it has ended.

    A published terminal event (completed, failed, cancelled) finishes the job. Without one (lease lost,
    worker shutting down, or the terminal publish itself failed) the message is redelivered; the next claim
    decides.
    """
    if terminal_published:
        return Settlement.ACK
    return Settlement.NAK


def terminal_msg_id(run_id: str, attempt: int, kind: str) -> str:
    """``Nats-Msg-Id`` of a terminal event: the stream deduplicates a retried publish of the same outcome."""
    if kind not in TERMINAL_KINDS:
        raise ValueError(f"{kind!r} is not a terminal event kind ({', '.join(TERMINAL_KINDS)})")
    return f"{run_id}:{attempt}:{kind}"


def run_name(run_id: str) -> str:
    return f"trainingRuns/{run_id}"


def checkpoint_key(run_id: str, attempt: int, file_name: str) -> str:
    """Per attempt, so a fenced-off worker still uploading cannot overwrite its successor's checkpoints."""
    return f"runs/{run_id}/checkpoints/attempt-{attempt}/{file_name}"


def artifact_key(run_id: str, attempt: int, file_name: str) -> str:
    return f"runs/{run_id}/attempt-{attempt}/{file_name}"


def worker_slots(configured: int, gpu_count: int) -> int:
    """Parallel jobs: the configured number, else one per GPU, else one on CPU."""
    if configured > 0:
        return configured
    return max(1, gpu_count)


@dataclass
class ProgressThrottle:
    """Lets progress through every ``every_iters`` iterations or ``every_seconds`` seconds (whichever first).

    Forced updates (validation results, phase changes, the last iteration) always pass.
    """

    every_iters: int
    every_seconds: float
    _last_iter: int | None = field(default=None, init=False)
    _last_time: float = field(default=-math.inf, init=False)

    def should_publish(self, iteration: int, now: float, *, force: bool = False) -> bool:
        due = (
            force
            or self._last_iter is None
            or iteration - self._last_iter >= self.every_iters
            or now - self._last_time >= self.every_seconds
        )
        if due:
            self._last_iter = iteration
            self._last_time = now
        return due


@dataclass
class LogBatch:
    """Collects log lines; ``take`` hands a batch out once it is big enough or old enough (or when forced)."""

    max_lines: int = 50
    max_seconds: float = 1.0
    max_line_chars: int = 2000
    _lines: list[str] = field(default_factory=list, init=False)
    _since: float | None = field(default=None, init=False)

    def add(self, line: str, now: float) -> None:
        line = line.rstrip("\n")
        if len(line) > self.max_line_chars:
            line = line[: self.max_line_chars] + " …"
        if self._since is None:
            self._since = now
        self._lines.append(line)

    def due(self, now: float) -> bool:
        return bool(self._lines) and (
            len(self._lines) >= self.max_lines
            or (self._since is not None and now - self._since >= self.max_seconds)
        )

    def take(self, now: float, *, force: bool = False) -> list[str]:
        if force:
            lines, self._lines, self._since = self._lines, [], None
            return lines
        if not self.due(now):
            return []
        lines, self._lines, self._since = self._lines[: self.max_lines], self._lines[self.max_lines :], None
        if self._lines:
            self._since = now
        return lines

    def __len__(self) -> int:
        return len(self._lines)


@dataclass
class LeaseClock:
    """Tracks when the lease was last renewed; the lease counts as lost once it expired without a renewal."""

    heartbeat_seconds: float
    lease_deadline: float  # monotonic time

    def renewed(self, now: float, lease_seconds_left: float) -> None:
        self.lease_deadline = now + max(0.0, lease_seconds_left)

    def expired(self, now: float) -> bool:
        return now >= self.lease_deadline

    def next_beat_in(self, now: float, failed: bool) -> float:
        """After a failed heartbeat retry sooner, but never later than shortly before the lease expires."""
        wait = self.heartbeat_seconds / 4 if failed else self.heartbeat_seconds
        return max(0.05, min(wait, (self.lease_deadline - now) / 2 if failed else wait))
