"""MMDetection training in a child process, driven from asyncio.

The parent (the worker's event loop) starts a ``spawn`` child that runs ``Runner.from_cfg(cfg).train()``
with a ``ProgressHook``, then evaluates the best checkpoint (``evaluation.evaluate_training``). Progress
DTOs and the final ``Outcome`` come back over a multiprocessing queue read in a thread. The child's
stdout/stderr (mmengine's log included) go to ``<work_dir>/train.log``, the run's log artifact.

Cancellation is cooperative first (``request_stop``: the hook checkpoints and leaves the loop), then forced
(``kill_after``). A child that dies without reporting is classified from its exit status (``crash_failure``:
retryable, with the log's last error as details). The child dies with the worker (``child_process``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import queue as queue_module
import re
import signal
import sys
import time
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.failures import classify_exception, error_details
from services.trainer_worker.adapters.child_process import oom_kills, start_child
from services.trainer_worker.domain.outcome import (
    Cancelled,
    Failure,
    FailureKind,
    Outcome,
    Phase,
    Progress,
    TrainingResult,
)

LOG_FILE = "train.log"


@dataclass(frozen=True)
class TrainingSpec:
    """Everything the child needs; picklable.

    Attributes:
        config: the filled config (``fill_dataset(...)``, a ``Config`` or its ``to_dict()``).
        device: a resolved device (``resolve_device``): ``cpu``, ``cuda`` or ``cuda:N``.
        has_test: evaluate the test split too (the config's test loader points at it).
        evaluate: evaluate the best checkpoint after training (the benchmark turns it off).
    """

    config: dict[str, Any]
    work_dir: Path
    device: str = "cpu"
    has_test: bool = False
    evaluate: bool = True
    progress_every_iters: int = 10
    progress_every_seconds: float = 2.0
    time_budget_seconds: float | None = None  # the run's max_runtime left (adapters/time_budget.py)


def resolve_device(setting: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; explicit ``cuda[:N]`` must be available."""
    value = setting.strip().lower() or "auto"
    if value == "cpu":
        return "cpu"
    if value not in ("auto", "cuda") and not re.fullmatch(r"cuda:\d+", value):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {setting!r}")
    import torch  # only when a GPU may be asked for: the worker process does not otherwise need torch

    available = torch.cuda.is_available()
    if value == "auto":
        return "cuda" if available else "cpu"
    if not available:
        raise ValueError(f"device {setting!r} requested but torch sees no CUDA device")
    return value


def latest_checkpoint(work_dir: Path) -> Path | None:
    """The checkpoint mmengine (or a stop request) wrote last in ``work_dir``, for resuming."""
    pointer = Path(work_dir) / "last_checkpoint"
    if not pointer.is_file():
        return None
    path = Path(pointer.read_text().strip())
    return path if path.is_file() else None


class TrainingProcess:
    """One training attempt in a child process.

    Usage::

        process = TrainingProcess(spec)
        process.start()
        async for progress in process.events():
            ...                                # publish (rate-limited by the hook)
        outcome = process.outcome              # TrainingResult | Failure | Cancelled
    """

    def __init__(self, spec: TrainingSpec) -> None:
        if not isinstance(spec.config, dict):  # an mmengine Config: pickle it as plain dicts
            spec = dataclasses.replace(spec, config=spec.config.to_dict())
        self.spec = spec
        self._ctx = multiprocessing.get_context("spawn")
        self._queue = self._ctx.Queue()
        self._stop = self._ctx.Event()
        self._process: Any = None
        self._stop_requested = False
        self._oom_kills_at_start: int | None = None
        self.outcome: Outcome | None = None

    def start(self) -> None:
        Path(self.spec.work_dir).mkdir(parents=True, exist_ok=True)
        self._oom_kills_at_start = oom_kills()
        self._process = start_child(
            self._ctx, _child_main, (self.spec, self._queue, self._stop), "raven-training"
        )

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def exit_code(self) -> int | None:
        return self._process.exitcode if self._process else None

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    @property
    def log_path(self) -> Path:
        return Path(self.spec.work_dir) / LOG_FILE

    async def events(self) -> AsyncIterator[Progress]:
        """Progress reports until the child ends; afterwards ``outcome`` is set."""
        while True:
            item = await asyncio.to_thread(self._next_item, 0.5)
            if item is None:
                if not self._process.is_alive():
                    break
                continue
            if isinstance(item, Progress):
                yield item
            else:
                self.outcome = item
        for item in self._drain():
            if isinstance(item, Progress):
                yield item
            else:
                self.outcome = item
        await asyncio.to_thread(self._process.join)
        if self.outcome is None:
            self.outcome = self._outcome_without_report()

    async def wait(self) -> Outcome:
        """Runs ``events()`` to the end (dropping reports) and returns the outcome."""
        if self.outcome is None:
            async for _ in self.events():
                pass
        assert self.outcome is not None
        return self.outcome

    def request_stop(self) -> None:
        """Cooperative stop: the hook checkpoints at the next iteration and leaves the training loop."""
        self._stop_requested = True
        self._stop.set()

    async def kill_after(self, grace_seconds: float) -> bool:
        """Waits ``grace_seconds`` for the child to end, then SIGKILLs it; True when it had to kill."""
        await asyncio.to_thread(self._process.join, grace_seconds)
        if self._process.is_alive():
            self.kill()
            return True
        return False

    def kill(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()

    def _next_item(self, timeout: float) -> Any:
        try:
            return self._queue.get(timeout=timeout)
        except queue_module.Empty:
            return None

    def _drain(self) -> list[Any]:
        items = []
        while True:
            try:
                items.append(self._queue.get(timeout=0.05))
            except queue_module.Empty:
                return items

    def _outcome_without_report(self) -> Outcome:
        code = self._process.exitcode
        if self._stop_requested:
            checkpoint = latest_checkpoint(self.spec.work_dir)
            return Cancelled("training was stopped on request", str(checkpoint) if checkpoint else None)
        before, after = self._oom_kills_at_start, oom_kills()
        oom_killed = None if before is None or after is None else after > before
        return crash_failure(code, self.log_path, oom_killed)


def crash_failure(code: int | None, log_path: Path, oom_killed: bool | None) -> Failure:
    """A child that ended without a report: retryable (``CHILD_CRASHED``). A signal is its own detail (the
    log holds nothing about it); any other exit carries the last error its log shows.

    Args:
        code: the exit status; negative for a signal.
        oom_killed: whether the cgroup's out-of-memory kill counter grew meanwhile (None: unknown).
    """
    if code is not None and code < 0:
        name = f"signal {-code} ({signal.Signals(-code).name})"
        details = (f"exit: killed by {name}",) + ("the cgroup's out-of-memory kill count grew",) * bool(
            oom_killed
        )
        if oom_killed:
            message = f"the training process ran out of memory: the kernel's out-of-memory killer sent {name}"
        elif oom_killed is None and -code == signal.SIGKILL:
            message = f"the training process was killed by {name}, e.g. by the out-of-memory killer"
        else:
            message = f"the training process was killed by {name}"
        advice = "; it is retried from its last checkpoint while attempts remain"
        if oom_killed is not False and -code == signal.SIGKILL:
            advice += "; if it repeats, lower batch_size or image_size"
        return Failure(FailureKind.CHILD_CRASHED, message + advice, details)
    return Failure(
        FailureKind.CHILD_CRASHED,
        f"the training process exited with status {code} without a result; see the run's log",
        error_details(_log_lines(log_path)),
    )


def _log_lines(path: Path, limit: int = 2000) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-limit:]
    except OSError:
        return []


# --- child process ---


def _child_main(spec: TrainingSpec, out: Any, stop: Any, log_name: str = LOG_FILE, join: Any = None) -> None:
    """The training child. ``join(spec, stop)``: a rank of a distributed attempt joins its process group
    first and gets back the stop all ranks agree on (``distributed_launch``); ``log_name``: its log."""
    work_dir = Path(spec.work_dir)
    log = open(work_dir / log_name, "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    if spec.device == "cpu":  # before torch is imported: mmengine then cannot pick a GPU by itself
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    elif spec.device.startswith("cuda:"):
        os.environ["CUDA_VISIBLE_DEVICES"] = spec.device.split(":", 1)[1]
    try:
        stop = join(spec, stop) if join is not None else stop
        outcome = _train_and_evaluate(spec, out, stop)
    except BaseException as exc:  # the parent gets a classified failure instead of a bare exit status
        traceback.print_exc()
        outcome = classify_exception(exc, stage="train", device=spec.device, config=spec.config)
    out.put(outcome)
    out.close()
    out.join_thread()
    log.flush()


def _train_and_evaluate(spec: TrainingSpec, out: Any, stop: Any) -> Outcome:
    # torch, mmengine and mmdet load in the training child only, never in the worker's light parent process
    from mmengine.config import Config
    from mmengine.runner import Runner

    from common.checkpoint_safety import install_safe_globals
    from common.config_gate import check_config
    from services.trainer_worker.adapters.distributed_launch import agreed_clock
    from services.trainer_worker.adapters.early_stopping import take_early_stopping
    from services.trainer_worker.adapters.evaluation import evaluate_training
    from services.trainer_worker.adapters.progress_hook import ProgressHook, TrainingStopped
    from services.trainer_worker.adapters.resume_state import ResumeStateHook
    from services.trainer_worker.adapters.time_budget import TimeBudgetHook, TimeBudgetReached

    install_safe_globals()  # resume and load_from go through torch.load(weights_only=True)
    cfg = Config(spec.config)
    try:
        check_config(spec.config)  # the gate again, right before anything is built (defence in depth)
        stopping = take_early_stopping(cfg)  # registered below as itself with a warm-up
        runner = Runner.from_cfg(cfg)
        for early in stopping:
            runner.register_hook(early)
        _ = (
            runner.train_loop,
            runner.val_loop,
        )  # build datasets and loaders now: their errors are config errors
    except BaseException as exc:
        traceback.print_exc()
        return classify_exception(exc, stage="build", device=spec.device, config=spec.config)
    hook = ProgressHook(out, stop, spec.progress_every_iters, spec.progress_every_seconds)
    runner.register_hook(hook)
    runner.register_hook(ResumeStateHook(resuming=bool(cfg.get("resume"))))  # exact resume: RNG, history
    if spec.time_budget_seconds is not None:
        # the clock all ranks agree on: every rank of a distributed attempt stops after the same iteration
        runner.register_hook(TimeBudgetHook(spec.time_budget_seconds, clock=agreed_clock))
    started = time.monotonic()
    out_of_time = False
    try:
        runner.train()
    except TrainingStopped as stopped:
        return Cancelled("training was stopped on request", stopped.checkpoint)
    except TimeBudgetReached:
        out_of_time = True  # checkpointed: evaluate the best checkpoint as after a finished training
    training_seconds = time.monotonic() - started
    _leave_process_group()
    last = latest_checkpoint(Path(spec.work_dir))
    if not spec.evaluate:
        return _result_without_evaluation(spec, runner, hook, training_seconds, last)
    out.put(
        Progress(
            kind="phase", phase=Phase.EVALUATING, epoch=runner.epoch, max_epochs=runner.max_epochs,
            iter=runner.iter, max_iters=runner.max_iters, time=time.time(),
        )
    )  # fmt: skip
    report = evaluate_training(cfg, Path(spec.work_dir), has_test=spec.has_test, device=spec.device)
    return TrainingResult(
        best_checkpoint=str(report.best_checkpoint),
        last_checkpoint=str(last) if last else None,
        metrics_path=str(report.metrics_path),
        curves_path=str(report.curves_path),
        log_path=str(Path(spec.work_dir) / LOG_FILE),
        metrics=report.metrics,
        parameter_count=report.parameter_count,
        versions=report.versions,
        training_seconds=round(training_seconds, 2),
        epochs=runner.epoch,
        iterations_run=hook.iterations_run,
        resumed_from=str(cfg.load_from) if cfg.get("resume") else None,
        stopped_early=_stopped_early(runner) and not out_of_time,
        stopped_by_time_budget=out_of_time,
    )


def _leave_process_group() -> None:
    """A distributed rank is done training: the evaluation runs in rank 0 alone, on the whole splits."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _stopped_early(runner: Any) -> bool:
    """train() returned before max_epochs: only early stopping ends it so (a stop request raises)."""
    return bool(getattr(runner.train_loop, "stop_training", False)) and runner.epoch < runner.max_epochs


def _result_without_evaluation(
    spec: TrainingSpec, runner: Any, hook: Any, seconds: float, last: Path | None
) -> TrainingResult:
    return TrainingResult(
        best_checkpoint=str(last or ""), last_checkpoint=str(last) if last else None,
        metrics_path="", curves_path="", log_path=str(Path(spec.work_dir) / LOG_FILE), metrics={},
        parameter_count=sum(p.numel() for p in runner.model.parameters()), versions={},
        training_seconds=round(seconds, 2), epochs=runner.epoch, iterations_run=hook.iterations_run,
        stopped_early=_stopped_early(runner),
    )  # fmt: skip
