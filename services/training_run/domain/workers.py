"""Trainer workers as training_run sees them (through claims and heartbeats), and the queue per capability.

Plain data: a worker tells what it offers (device, slots) each time it calls; what it runs is the set of runs
it holds a lease on, which the runs table already knows, so it is never stored twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from common.errors import FieldViolation

DEVICE_KINDS = ("cpu", "cuda")
MAX_GPUS = 64
MAX_SLOTS = 256
MAX_GPUS_PER_RUN = 8  # common.hyperparameters.MAX_GPUS (the domain imports no common config)
MAX_TEXT = 200
GPU = "gpu"
ANY = "any"


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker offers. An empty ``device_kind`` means an older worker that did not say."""

    device_kind: str = ""
    gpu_model: str = ""
    gpu_count: int = 0
    slots: int = 0
    gpus_per_run: int = 0  # the run size it takes; 0 = an older worker that did not say (it took size 1)

    @property
    def has_gpu(self) -> bool:
        return self.device_kind == "cuda" and self.gpu_count > 0

    def violations(self, prefix: str = "worker") -> list[FieldViolation]:
        found: list[FieldViolation] = []
        if self.device_kind not in ("", *DEVICE_KINDS):
            found.append(FieldViolation(f"{prefix}.device_kind", f"must be one of {', '.join(DEVICE_KINDS)}"))
        if len(self.gpu_model) > MAX_TEXT or not self.gpu_model.isprintable():
            found.append(FieldViolation(f"{prefix}.gpu_model", f"at most {MAX_TEXT} printable characters"))
        if not 0 <= self.gpu_count <= MAX_GPUS:
            found.append(FieldViolation(f"{prefix}.gpu_count", f"must be between 0 and {MAX_GPUS}"))
        if not 0 <= self.slots <= MAX_SLOTS:
            found.append(FieldViolation(f"{prefix}.slots", f"must be between 0 and {MAX_SLOTS}"))
        if not 0 <= self.gpus_per_run <= MAX_GPUS_PER_RUN:
            found.append(
                FieldViolation(f"{prefix}.gpus_per_run", f"must be between 0 and {MAX_GPUS_PER_RUN}")
            )
        return found


@dataclass
class SeenWorker:
    worker_id: str
    info: WorkerInfo
    first_seen_time: datetime
    last_seen_time: datetime
    training_runs: list[str] = field(default_factory=list)  # run ids it holds a lease on

    @property
    def free_slots(self) -> int:
        return max(0, self.info.slots - len(self.training_runs))

    def seen_again(self, info: WorkerInfo, now: datetime) -> None:
        """A later call: newer facts win, but a call that says nothing about the device keeps the old ones."""
        if info.device_kind or info.slots:
            self.info = info
        self.last_seen_time = max(self.last_seen_time, now)


@dataclass(frozen=True)
class QueueDepth:
    capability: str
    pending_training_runs: int
    workers: int
    free_slots: int


def queue_depths(
    workers: Sequence[SeenWorker], pending_by_template: Mapping[str, int], gpu_templates: Iterable[str]
) -> list[QueueDepth]:
    """Pending runs of GPU-recommended templates queue for "gpu" (workers with a GPU); the rest for "any"."""
    gpu = set(gpu_templates)
    gpu_workers = [w for w in workers if w.info.has_gpu]
    return [
        QueueDepth(
            GPU,
            sum(n for t, n in pending_by_template.items() if t in gpu),
            len(gpu_workers),
            sum(w.free_slots for w in gpu_workers),
        ),
        QueueDepth(
            ANY,
            sum(n for t, n in pending_by_template.items() if t not in gpu),
            len(workers),
            sum(w.free_slots for w in workers),
        ),
    ]
