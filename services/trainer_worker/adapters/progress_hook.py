"""mmengine Hook that reports training progress to the parent process and stops training on request.

Runs inside the training child. Reports are small ``Progress`` dataclasses put on a multiprocessing
queue: every ``every_iters`` iterations or ``every_seconds`` seconds, at the end of every epoch (after the
CheckpointHook wrote its checkpoint: this hook has the lowest priority), after every validation, and on
phase changes. A stop request (a multiprocessing Event) is honoured at the next iteration: the hook saves a
checkpoint of the current iteration, marks it as the last checkpoint, sets ``train_loop.stop_training`` and
leaves the epoch by raising ``TrainingStopped``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mmengine.hooks import Hook

from services.trainer_worker.domain.outcome import Phase, Progress


class TrainingStopped(Exception):
    """Raised out of the training loop after a stop request; carries the checkpoint written for it."""

    def __init__(self, checkpoint: str) -> None:
        super().__init__(f"training stopped on request; checkpoint {checkpoint}")
        self.checkpoint = checkpoint


class ProgressHook(Hook):
    priority = "LOWEST"

    def __init__(
        self, queue: Any, stop_event: Any, every_iters: int = 10, every_seconds: float = 2.0
    ) -> None:
        self.queue = queue
        self.stop_event = stop_event
        self.every_iters = max(1, every_iters)
        self.every_seconds = every_seconds
        self.iterations_run = 0
        self._last_sent = 0.0
        self._start = 0.0
        self._start_iter = 0
        self._val_metrics: dict[str, float] = {}

    def before_train(self, runner: Any) -> None:
        self._start = time.monotonic()
        self._start_iter = runner.iter
        self._send(runner, "phase", Phase.TRAINING)

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: dict | None = None
    ) -> None:
        self.iterations_run += 1
        if self.stop_event.is_set():
            self._stop(runner)
        now = time.monotonic()
        step = runner.iter + 1
        if step % self.every_iters == 0 or now - self._last_sent >= self.every_seconds:
            self._send(runner, "iter", Phase.TRAINING, losses=_floats(outputs or {}), step=step)

    def after_train_epoch(self, runner: Any) -> None:
        self._send(runner, "epoch", Phase.TRAINING, epoch=runner.epoch + 1)

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        self._val_metrics = _floats(metrics or {})
        self._send(runner, "val", Phase.TRAINING)

    def _stop(self, runner: Any) -> None:
        runner.train_loop.stop_training = True
        name = f"iter_{runner.iter + 1}.pth"
        # by_epoch=False records the unfinished epoch, so a resume redoes it instead of skipping its rest.
        runner.save_checkpoint(runner.work_dir, filename=name, by_epoch=False)
        path = str(Path(runner.work_dir) / name)
        (Path(runner.work_dir) / "last_checkpoint").write_text(path)
        raise TrainingStopped(path)

    def _send(
        self,
        runner: Any,
        kind: str,
        phase: Phase,
        *,
        losses: dict[str, float] | None = None,
        step: int | None = None,
        epoch: int | None = None,
    ) -> None:
        loop = runner.train_loop
        step = runner.iter if step is None else step
        done = step - self._start_iter
        elapsed = time.monotonic() - self._start
        # no estimate before training starts (a resumed attempt first validates its checkpoint's epoch)
        eta = elapsed / done * max(loop.max_iters - step, 0) if done > 0 and self._start else 0.0
        self.queue.put(
            Progress(
                kind=kind,
                phase=phase,
                epoch=runner.epoch if epoch is None else epoch,
                max_epochs=loop.max_epochs,
                iter=step,
                max_iters=loop.max_iters,
                losses=losses or {},
                lr=_current_lr(runner),
                eta_seconds=round(eta, 1),
                val_metrics=dict(self._val_metrics),
                time=time.time(),
            )
        )
        self._last_sent = time.monotonic()


def _current_lr(runner: Any) -> float:
    try:
        lrs = runner.optim_wrapper.get_lr()
    except (AttributeError, RuntimeError):  # optimizer not built yet
        return 0.0
    values = next(iter(lrs.values()), [0.0]) if isinstance(lrs, dict) else [0.0]
    return float(values[0]) if values else 0.0


def _floats(values: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in values.items():
        try:
            out[str(key)] = float(value.item() if hasattr(value, "item") else value)
        except (TypeError, ValueError):
            continue
    return out
