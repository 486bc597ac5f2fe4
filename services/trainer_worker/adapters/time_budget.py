"""The run's ``max_runtime`` inside the training child: an mmengine hook that ends training when the time
left to the run is spent, keeping a checkpoint of the current iteration, so the child goes on to evaluate the
best checkpoint and the run is registered ("stopped by time budget").

The time left comes from training_run at the claim (``TrainingRun.max_runtime - runtime_used``), less what
the attempt spent before training started (``domain/budget.training_budget``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mmengine.hooks import Hook


class TimeBudgetReached(Exception):
    """Raised out of the training loop once the run's time budget is spent; carries the checkpoint."""

    def __init__(self, checkpoint: str) -> None:
        super().__init__(f"time budget spent; checkpoint {checkpoint}")
        self.checkpoint = checkpoint


class TimeBudgetHook(Hook):
    """Checks the budget after every training iteration (at least one iteration always trains)."""

    priority = "VERY_LOW"  # after the CheckpointHook of the same iteration, before ProgressHook (LOWEST)

    def __init__(self, seconds: float, clock: Any = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._deadline: float | None = None

    def before_train(self, runner: Any) -> None:
        self._deadline = self._clock() + self.seconds

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: dict | None = None
    ) -> None:
        if self._deadline is None or self._clock() < self._deadline:
            return
        runner.train_loop.stop_training = True
        name = f"iter_{runner.iter + 1}.pth"
        runner.save_checkpoint(runner.work_dir, filename=name, by_epoch=False)
        path = str(Path(runner.work_dir) / name)
        (Path(runner.work_dir) / "last_checkpoint").write_text(path)
        raise TimeBudgetReached(path)
