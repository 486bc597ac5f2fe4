"""The small interfaces an attempt talks to the outside through; ``bootstrap.py`` wires the adapters.

``RunService`` is training_run's lease RPCs (``adapters/training_run_client.py``), ``Reporter`` the run's
event stream (``adapters/events.py``), ``CheckpointStore`` the resume checkpoints in the artifact store
(``adapters/checkpoints.py``), ``JobDelivery`` one JetStream job message (``adapters/jobs.py``) and
``ControlChannel`` the run's control subject (``adapters/control.py``). Tests pass fakes that subclass these.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from common.proto.raven.v1 import events_pb2, training_run_pb2, types_pb2


@dataclass(frozen=True)
class Lease:
    """An attempt's claim on a run, as training_run granted it."""

    run_id: str
    attempt: int
    heartbeat_seconds: float
    lease_seconds_left: float
    resume_checkpoint: str
    training_run: training_run_pb2.TrainingRun


class ClaimRefused(Exception):
    """training_run will never let this job message be worked on (cancelled, finished, stale or leased)."""


class LeaseLost(Exception):
    """This attempt is fenced off: stop working and publish no outcome."""


class TrainingRunUnavailable(Exception):
    """training_run did not answer (or refused our credentials); the job goes back to the queue."""


class EventPublishFailed(Exception):
    """A terminal event could not be stored: the job must not be acked."""


class EvaluationClaimUnanswered(Exception):
    """trained_model did not answer an evaluation claim; the job goes back to the queue."""


class EvaluationClaims(abc.ABC):
    """trained_model's answer to "may this delivery run the evaluation?" (``adapters/evaluation_jobs.py``)."""

    @abc.abstractmethod
    async def claim(self, evaluation_id: str, attempt: int, worker_id: str) -> None:
        """Returns when granted (the evaluation is RUNNING on ``attempt``); raises ``ClaimRefused`` (never run
        it: cancelled, ended, a newer attempt) or ``EvaluationClaimUnanswered``."""


class RunService(abc.ABC):
    """training_run's worker RPCs: claim a run, keep its lease, hand it back."""

    @abc.abstractmethod
    async def claim(self, run_id: str, job_attempt: int) -> Lease:
        """Raises ``ClaimRefused`` or ``TrainingRunUnavailable``."""

    @abc.abstractmethod
    async def heartbeat(self, lease: Lease, latest_checkpoint: str = "") -> tuple[bool, float]:
        """Renews the lease; returns (cancel requested, seconds left).

        Raises ``LeaseLost`` or ``TrainingRunUnavailable``."""

    @abc.abstractmethod
    async def release(self, lease: Lease, reason: str, latest_checkpoint: str = "") -> None:
        """Hands the lease back so another worker resumes at once."""


class Reporter(abc.ABC):
    """One attempt's phases, progress, logs and outcome. Terminal reports are durable once they return
    (``EventPublishFailed`` otherwise); the others are best effort."""

    @abc.abstractmethod
    async def started(self, worker_id: str, device: str, resumed_from: str = "") -> None: ...

    @abc.abstractmethod
    async def phase(self, phase: types_pb2.RunPhase) -> None: ...

    @abc.abstractmethod
    async def progress(self, snapshot: types_pb2.ProgressSnapshot, *, force: bool = False) -> bool:
        """Reports when the rate limit allows it (or ``force``); returns whether it did."""

    @abc.abstractmethod
    async def log(self, line: str) -> None: ...

    @abc.abstractmethod
    async def flush_logs(self, *, force: bool = True) -> None: ...

    @abc.abstractmethod
    async def completed(self, payload: events_pb2.RunCompleted) -> None: ...

    @abc.abstractmethod
    async def failed(self, failure: types_pb2.Failure) -> None: ...

    @abc.abstractmethod
    async def cancelled(self, reason: str, last_checkpoint: str = "") -> None: ...


class CheckpointStore(abc.ABC):
    """A run's resume checkpoints: upload the newest local one, download the one to resume from."""

    latest_key: str

    @abc.abstractmethod
    async def download(self, key: str, dest_dir: Path) -> Path: ...

    async def download_best(self, dest_dir: Path) -> Path | None:
        """Fetches the run's best checkpoint of earlier attempts into ``dest_dir``; None if there is none."""
        return None

    @abc.abstractmethod
    async def sync(self, work_dir: Path) -> str:
        """Uploads the newest local checkpoint if it changed; returns the newest uploaded key."""

    @abc.abstractmethod
    async def acknowledged(self, key: str) -> None:
        """training_run recorded ``key``: older uploads may go."""

    @abc.abstractmethod
    async def delete_all(self) -> None: ...


class JobDelivery(abc.ABC):
    """One delivered job message; settled exactly once (``settled`` names how), later calls are no-ops."""

    settled: str | None

    @abc.abstractmethod
    def parse(self) -> events_pb2.TrainingJob:
        """The job; raises ``ValueError`` when the payload is not one."""

    @abc.abstractmethod
    async def in_progress(self) -> None: ...

    @abc.abstractmethod
    async def ack(self) -> None: ...

    @abc.abstractmethod
    async def nak(self, delay: float | None = None) -> None:
        """Redelivered after ``delay`` seconds (the adapter's own default backoff when not given)."""

    @abc.abstractmethod
    async def term(self) -> None: ...

    @abc.abstractmethod
    async def fail(self, error: str) -> None:
        """Back to the queue after a backoff, or dead-lettered on its last delivery."""

    @abc.abstractmethod
    async def reject(self, error: str) -> None:
        """Dead-lettered at once: the payload can never be worked on."""


CancelCallback = Callable[[int, str], None]  # (attempt the request is for, 0 = any; reason)


class ControlChannel(abc.ABC):
    """Cancel requests pushed to a running attempt (the heartbeat's cancel flag is the fallback)."""

    @abc.abstractmethod
    async def subscribe(self, run_id: str, on_cancel: CancelCallback) -> Callable[[], Awaitable[None]]:
        """Calls ``on_cancel`` for each cancel request for ``run_id``; returns the unsubscribe coroutine."""
