"""What each attempt of a run trains with, and the out-of-memory retry rule.

An attempt that ran out of memory (CUDA OOM, or the kernel's OOM killer ended the training child) is
retried, while ``max_attempts`` allow, with half the batch size (at least 1) and the learning rate scaled
linearly with it, as the templates' auto-scale-LR rule (``lr * batch / base_batch``) would. A run already
at batch size 1 can't go smaller: that failure is final, and says so. Plain Python.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from common.failures import Failure

CANT_GO_SMALLER = (
    "; batch_size is already 1 and can't go smaller: lower image_size, or train on a device with more memory"
)


@dataclass(frozen=True)
class AttemptRecord:
    """The batch size and learning rate an attempt trains with (recorded when it is queued), and, once it
    ended other than with the run, why (``end_reason``; ``preempted`` when its worker was preempted and
    released it with a checkpoint: not a failed attempt)."""

    attempt: int
    batch_size: int
    learning_rate: float
    preempted: bool = False
    end_reason: str = ""

    def ended(self, reason: str, *, preempted: bool = False) -> AttemptRecord:
        return dataclasses.replace(self, end_reason=reason, preempted=preempted)

    @classmethod
    def first(cls, hyperparameters: dict[str, Any]) -> AttemptRecord | None:
        """Attempt 1 trains with the run's resolved hyperparameters (None when they name no batch size)."""
        batch, lr = hyperparameters.get("batch_size"), hyperparameters.get("learning_rate")
        if not batch or lr is None:
            return None
        return cls(1, int(batch), float(lr))

    def next(self, failure: Failure | None = None) -> AttemptRecord | None:
        """The next attempt's record: after an out-of-memory ``failure`` with half the batch and the learning
        rate scaled with it, else the same settings; None when memory ran out at batch size 1."""
        if failure is None or not failure.out_of_memory:
            return AttemptRecord(self.attempt + 1, self.batch_size, self.learning_rate)
        if self.batch_size <= 1:
            return None
        batch = max(1, self.batch_size // 2)
        return AttemptRecord(self.attempt + 1, batch, self.learning_rate * batch / self.batch_size)


def final_out_of_memory(failure: Failure) -> Failure:
    """The failure of a run that ran out of memory at batch size 1: it says the batch can't go smaller."""
    return Failure(failure.kind, failure.message + CANT_GO_SMALLER, failure.details)
