"""What one attempt's steps see while it runs: the job, its lease, its scratch directory, its reporter, and
the stop request that may end it early. The attempt (``attempt.py``) owns it; the steps read it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.logging import get_logger
from common.proto.raven.v1 import events_pb2, types_pb2
from services.trainer_worker.domain.job import StopReason, StopSignal
from services.trainer_worker.service_layer.ports import CheckpointStore, Lease, Reporter

log = get_logger("trainer_worker.job")


@dataclass
class AttemptContext:
    job: events_pb2.TrainingJob
    lease: Lease
    device: str
    work_dir: Path  # scratch for this attempt, removed at the end
    reporter: Reporter
    checkpoints: CheckpointStore
    worker_id: str
    stop: StopSignal = field(default_factory=StopSignal)
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    checkpoint_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    resume_from: Path | None = None
    phase: int = types_pb2.RUN_PHASE_UNSPECIFIED
    claimed_at: float = field(default_factory=time.monotonic)  # created right after the claim

    @property
    def run_id(self) -> str:
        return self.job.run_id

    @property
    def train_dir(self) -> Path:
        return self.work_dir / "train"

    async def enter_phase(self, phase: int) -> None:
        """Reports a phase change once (the attempt and the training child both announce EVALUATING)."""
        if phase != self.phase:
            self.phase = phase
            await self.reporter.phase(phase)  # type: ignore[arg-type]

    def sync_checkpoint_soon(self) -> None:
        self.checkpoint_wakeup.set()

    def request_stop(self, reason: StopReason, detail: str = "") -> None:
        if self.stop.request(reason, detail):
            log.info("stop requested", run_id=self.run_id, reason=reason.value, detail=detail)
        self.stop_event.set()
