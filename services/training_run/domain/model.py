"""The TrainingRun aggregate: an AIP-216 state machine changed only through its transition methods.

Pure Python. States, phases, failures: :mod:`lifecycle`; events: :mod:`events`; time budgets: :mod:`budgets`.
Every transition appends a :class:`Transition` and records domain events written to the outbox in one
transaction. ``attempt`` (1-based) grows whenever the run goes back to PENDING. Lost leases and retryable
failures (``lost_attempts``) count toward ``max_attempts``; releases by a preempted worker
(``released_attempts``) do not. ``attempts`` records each attempt's settings and end (:mod:`attempts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.training_run.domain import budgets
from services.training_run.domain.attempts import AttemptRecord, final_out_of_memory
from services.training_run.domain.events import CancelRequested, DomainEvent, JobRequested, StateChanged
from services.training_run.domain.lifecycle import (
    ALLOWED_TRANSITIONS,
    LEASED_STATES,
    Failure,
    FailureKind,
    InvalidTransition,
    LeaseConflict,
    Phase,
    RunState,
    StartupGrace,
    Transition,
)
from services.training_run.domain.spec import RunSpec as RunSpec  # its home is spec.py
from services.training_run.domain.version_wait import WaitsForDatasetVersion


@dataclass(eq=False)
class TrainingRun(WaitsForDatasetVersion):
    id: str
    owner: str
    display_name: str
    spec: RunSpec
    create_time: datetime
    description: str = ""
    request_id: str = ""
    state: RunState = RunState.UNSPECIFIED
    phase: Phase = Phase.UNSPECIFIED
    progress: bytes = b""  # serialized snapshot; opaque to the domain
    progress_seq: int = 0  # events-stream sequence of the newest applied snapshot/phase
    attempt: int = 1
    lost_attempts: int = 0
    released_attempts: int = 0
    worker_id: str = ""
    lease_expire_time: datetime | None = None
    resume_checkpoint: str = ""
    registering: bool = False
    trained_model: str = ""
    stopped_epoch: int | None = None  # the last epoch trained when early stopping ended training, else None
    stopped_by_time_budget: bool = False  # max_runtime ended training (the model is still registered)
    pending_deadline: datetime | None = None  # while PENDING with a max_pending: when it has waited too long
    failure: Failure | None = None
    update_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    transitions: list[Transition] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)
    version: int = 0
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    # ---- creation ------------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        *,
        id: str,
        owner: str,
        display_name: str,
        spec: RunSpec,
        now: datetime,
        description: str = "",
        request_id: str = "",
    ) -> TrainingRun:
        run = cls(
            id=id,
            owner=owner,
            display_name=display_name,
            spec=spec,
            create_time=now,
            description=description,
            request_id=request_id,
            update_time=now,
        )
        run._transition(RunState.PENDING, now, "created")
        run.pending_deadline = budgets.pending_deadline(spec.max_pending_seconds, now)
        first = AttemptRecord.first(spec.hyperparameters)
        run.attempts = [first] if first is not None else []
        run.events.append(JobRequested(run.id, run.attempt))
        return run

    @property
    def current_attempt(self) -> AttemptRecord | None:
        """What the current attempt trains with (None for a run created before attempts were recorded)."""
        last = self.attempts[-1] if self.attempts else None
        return last if last is not None and last.attempt == self.attempt else None

    # ---- user commands -------------------------------------------------------------------------------------
    def rename(self, now: datetime, display_name: str | None = None, description: str | None = None) -> None:
        if display_name is not None:
            self.display_name = display_name
        if description is not None:
            self.description = description
        self.update_time = now

    def request_cancel(self, now: datetime, reason: str = "") -> None:
        why = reason or "cancelled by the user"
        if self.state == RunState.PENDING:
            self._transition(RunState.CANCELLED, now, why)
        elif self.state == RunState.RUNNING:
            if self.registering:
                raise InvalidTransition(
                    "training already finished; the model is being registered and can't be cancelled"
                )
            self._transition(RunState.CANCELLING, now, why)
            self.events.append(CancelRequested(self.id, self.attempt, why))
        elif self.state == RunState.CANCELLING:
            return  # already asked; idempotent
        else:
            raise InvalidTransition(f"run is {self.state.name} and can't be cancelled")

    def ensure_deletable(self) -> None:
        if not self.state.terminal:
            raise InvalidTransition(
                f"run is {self.state.name}: cancel it and wait for a final state before deleting"
            )

    # ---- worker leases -------------------------------------------------------------------------------------
    def claim(self, worker_id: str, job_attempt: int, now: datetime, lease: timedelta) -> None:
        if self.state.terminal or self.state == RunState.CANCELLING:
            raise InvalidTransition(f"run is {self.state.name}; drop the job")
        if job_attempt != self.attempt:
            raise LeaseConflict(f"job attempt {job_attempt} is stale: the run is at attempt {self.attempt}")
        if self.state == RunState.RUNNING:
            if self.worker_id == worker_id and not self.lease_expired(now):
                self.lease_expire_time = now + lease  # the same worker retrying its claim: idempotent
                return
            raise LeaseConflict(f"attempt {self.attempt} is already leased to another worker")
        self._transition(RunState.RUNNING, now, f"claimed by {worker_id}")
        self.worker_id = worker_id
        self.lease_expire_time = now + lease
        self.pending_deadline = None
        self.phase = Phase.UNSPECIFIED
        self.progress = b""
        if self.start_time is None:
            self.start_time = now

    def heartbeat(
        self,
        worker_id: str,
        attempt: int,
        now: datetime,
        lease: timedelta,
        checkpoint: str = "",
        grace: StartupGrace | None = None,
    ) -> bool:
        """Extends the lease; returns True when the worker should stop (cancel requested)."""
        self._check_lease(worker_id, attempt, now, grace)
        self.lease_expire_time = now + lease
        if checkpoint:
            self.resume_checkpoint = checkpoint
        return self.state == RunState.CANCELLING

    def release(
        self,
        worker_id: str,
        attempt: int,
        now: datetime,
        reason: str = "",
        checkpoint: str = "",
        grace: StartupGrace | None = None,
    ) -> None:
        self._check_lease(worker_id, attempt, now, grace)
        if checkpoint:
            self.resume_checkpoint = checkpoint
        if self.state == RunState.CANCELLING:
            self._transition(
                RunState.CANCELLED, now, f"worker released the run while cancelling: {reason}".rstrip(": ")
            )
            return
        self.released_attempts += 1
        self._requeue(now, f"preempted: released by {worker_id}: {reason}".rstrip(": "), preempted=True)

    def lease_expired(self, now: datetime, grace: StartupGrace | None = None) -> bool:
        if grace is not None and grace.covers(now):
            return False
        return self.lease_expire_time is not None and self.lease_expire_time <= now

    def expire_pending(self, now: datetime) -> bool:
        """The reaper's step for a run past its ``max_pending``: FAILED, TIMED_OUT; False when not due."""
        due = self.pending_deadline is not None and self.pending_deadline <= now
        if self.state != RunState.PENDING or not due or self.spec.max_pending_seconds is None:
            return False
        self._fail(now, budgets.pending_timeout(self.spec.max_pending_seconds))
        return True

    def expire_lease(self, now: datetime, grace: StartupGrace | None = None) -> bool:
        """The reaper's step for a run whose lease ran out; returns False when there was nothing to do.

        A lease that ran out before training_run came back (``grace.started``) and saw no heartbeat during
        the grace may have been lost to the outage alone: the run is requeued like a graceful release, not
        charged as a lost attempt.
        """
        if self.state not in LEASED_STATES or not self.lease_expired(now, grace):
            return False
        assert self.lease_expire_time is not None
        outage = grace is not None and self.lease_expire_time <= grace.started
        if self.registering:
            self._fail(
                now,
                Failure(
                    FailureKind.TIMED_OUT,
                    "the trained model was not registered in time; create the run again",
                ),
            )
        elif self.state == RunState.CANCELLING:
            self._transition(RunState.CANCELLED, now, f"worker {self.worker_id} lost while cancelling")
        elif outage:
            self.released_attempts += 1
            self._requeue(
                now,
                f"lease of worker {self.worker_id} ran out while training_run was down and no heartbeat came "
                "after it was back; not counted as a lost attempt",
            )
        else:
            self.lost_attempts += 1
            if self.lost_attempts >= self.spec.max_attempts:
                self._fail(
                    now,
                    Failure(
                        FailureKind.WORKER_LOST,
                        f"the worker stopped sending heartbeats {self.lost_attempts} time(s) (max_attempts="
                        f"{self.spec.max_attempts}); check the worker logs, or raise max_attempts",
                    ),
                )
            else:
                self._requeue(now, f"lease of worker {self.worker_id} expired")
        return True

    # ---- events reported by the worker and by trained_model (fenced by attempt) ----------------------------
    def is_current(self, attempt: int) -> bool:
        return attempt == self.attempt and self.state in LEASED_STATES

    def on_started(self, attempt: int, now: datetime) -> bool:
        if not self.is_current(attempt) or self.registering or self.phase != Phase.UNSPECIFIED:
            return False
        self.phase = Phase.PREPARING_DATASET
        self.update_time = now
        return True

    def on_progress(
        self, attempt: int, seq: int, now: datetime, phase: Phase | None, progress: bytes | None
    ) -> bool:
        """Phase change or progress snapshot; older stream sequences never overwrite newer ones."""
        if not self.is_current(attempt) or self.registering or seq <= self.progress_seq:
            return False
        self.progress_seq = seq
        if phase is not None and phase != Phase.UNSPECIFIED:
            self.phase = phase
        if progress is not None:
            self.progress = progress
        self.update_time = now
        return True

    def on_completed(
        self,
        attempt: int,
        now: datetime,
        registration_deadline: datetime,
        stopped_epoch: int | None = None,
        stopped_by_time_budget: bool = False,
    ) -> bool:
        """The attempt's worker finished training (early stopping after ``stopped_epoch``, if set; or at its
        ``max_runtime``: ``stopped_by_time_budget``). Completed
        after cancel: the cancel stands, the run ends CANCELLED and no model is attached (trained_model drops
        one it may have registered on CANCELLED); a later cancel is refused instead (``request_cancel``)."""
        if attempt == self.attempt and self.state == RunState.CANCELLING:
            self._transition(
                RunState.CANCELLED, now, "the worker finished training after the cancel; no model is kept"
            )
            return True
        if not (attempt == self.attempt and self.state == RunState.RUNNING) or self.registering:
            return False
        self.registering = True
        self.stopped_epoch = stopped_epoch
        self.stopped_by_time_budget = stopped_by_time_budget
        self.phase = Phase.UPLOADING
        self.lease_expire_time = registration_deadline
        self.update_time = now
        return True

    def on_model_registered(self, trained_model: str, now: datetime) -> bool:
        if not (self.registering and self.state == RunState.RUNNING):
            return False
        self.trained_model = trained_model
        self.registering = False
        self._transition(RunState.SUCCEEDED, now, f"model {trained_model} registered")
        return True

    def on_registration_failed(self, failure: Failure, now: datetime) -> bool:
        if not (self.registering and self.state == RunState.RUNNING):
            return False
        self._fail(now, failure)
        return True

    def on_failed(self, attempt: int, failure: Failure, now: datetime) -> bool:
        if not self.is_current(attempt) or self.registering:
            return False
        current = self.current_attempt
        following = current.next(failure) if current is not None else None
        if current is not None and following is None:  # out of memory at batch size 1
            self._fail(now, final_out_of_memory(failure))
            return True
        smaller = current is not None and following is not None and following.batch_size < current.batch_size
        if (failure.kind.retryable or smaller) and self.lost_attempts + 1 < self.spec.max_attempts:
            self.lost_attempts += 1  # a failed attempt counts toward max_attempts like a lost lease
            reason = f"attempt {attempt} failed ({failure.kind.name}): {failure.message}"
            if smaller and following is not None:
                reason += f"; retried with batch_size {following.batch_size}"
            self._requeue(now, reason, following)
            return True
        self._fail(now, failure)
        return True

    def on_dead_lettered(self, attempt: int, message: str, now: datetime) -> bool:
        """A message about this run (job, event, registration) was given up on: the run ends FAILED.

        ``attempt`` 0 means the message did not say which attempt; a message about an earlier attempt
        changes nothing (that attempt is over already).
        """
        if self.state.terminal or (attempt and attempt != self.attempt):
            return False
        self._fail(now, Failure(FailureKind.INTERNAL_ERROR, message))
        return True

    def on_cancelled(self, attempt: int, now: datetime, reason: str = "") -> bool:
        if not self.is_current(attempt) or self.registering:
            return False
        self._transition(RunState.CANCELLED, now, reason or "cancelled by the worker")
        return True

    # ---- internals -----------------------------------------------------------------------------------------
    def _check_lease(
        self, worker_id: str, attempt: int, now: datetime, grace: StartupGrace | None = None
    ) -> None:
        if attempt != self.attempt or self.state not in LEASED_STATES:
            raise LeaseConflict(
                f"attempt {attempt} no longer holds the run (now attempt {self.attempt}, "
                f"{self.state.name}); stop working on it"
            )
        if worker_id != self.worker_id:
            raise LeaseConflict(f"attempt {attempt} is leased to another worker")
        if self.registering:
            raise LeaseConflict("the run already completed; its lease is over")
        if self.lease_expired(now, grace):
            raise LeaseConflict("the lease expired; stop working on the run, it will be requeued")

    def _requeue(
        self, now: datetime, reason: str, following: AttemptRecord | None = None, *, preempted: bool = False
    ) -> None:
        """Back to PENDING as the next attempt, which trains with ``following`` (else the same settings); the
        ending attempt's record keeps why it ended."""
        self._transition(RunState.PENDING, now, reason)
        self.pending_deadline = budgets.pending_deadline(self.spec.max_pending_seconds, now)
        current = self.current_attempt
        following = following or (current.next() if current is not None else None)
        if current is not None:
            self.attempts[-1] = current.ended(reason, preempted=preempted)
        if following is not None:
            self.attempts.append(following)
        self.attempt += 1
        self.worker_id = ""
        self.lease_expire_time = None
        self.phase = Phase.UNSPECIFIED
        self.progress = b""
        self.events.append(JobRequested(self.id, self.attempt))

    def _fail(self, now: datetime, failure: Failure) -> None:
        self._transition(RunState.FAILED, now, f"{failure.kind.name}: {failure.message}")
        self.failure = failure

    def _transition(self, to: RunState, now: datetime, reason: str) -> None:
        if (self.state, to) not in ALLOWED_TRANSITIONS:
            raise InvalidTransition(f"run is {self.state.name} and can't become {to.name}")
        previous = self.state
        self.state = to
        self.transitions.append(Transition(previous, to, now, reason, self.attempt))
        self.events.append(
            StateChanged(self.id, self.attempt, previous, to, reason, now, len(self.transitions) - 1)
        )
        self.update_time = now
        if to.terminal:
            self.end_time = now
            self.lease_expire_time = None
            self.registering = False
