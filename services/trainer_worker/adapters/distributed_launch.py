"""One training attempt over N ranks with ``torch.distributed``: the worker launches one process per
GPU (CPU: N gloo processes) as ``torchrun --standalone`` does; MMEngine trains with ``launcher='pytorch'``.

Parent side (the worker's event loop): :func:`launch_training` picks a ``TrainingProcess`` for one rank and a
:class:`DistributedTrainingProcess` for more. Each rank is a ``spawn`` child started behind ``child_process``
(``PR_SET_PDEATHSIG``: every rank dies with the worker) with the torchrun environment (``MASTER_ADDR``,
``MASTER_PORT`` on a free port, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``). Rank 0 alone reports progress and
the outcome over the queue and writes checkpoints (MMEngine saves on the main process only); the other ranks
log to ``train.rank<N>.log``. A :class:`RankGroup` watches the ranks: when one dies or fails, the others are
killed at once, so a SIGKILL of any rank ends the whole attempt (retryable, resumed from the last checkpoint).

Rank side (:func:`join_group`, called by ``training._child_main`` before anything is built): joins the
process group (gloo on CPU, NCCL on CUDA with the rank's ``LOCAL_RANK`` device) and turns the stop event into
a :class:`SynchronizedStop`, so every rank leaves the loop at the same iteration (a rank that stopped alone
would leave the others waiting in an all-reduce). The same rank code runs under ``torchrun`` (``rank_cli``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import multiprocessing.connection
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from services.trainer_worker.adapters import training
from services.trainer_worker.adapters.child_process import oom_kills, start_child
from services.trainer_worker.domain.outcome import Failure, Outcome, Progress

MAX_RANKS = 8
LINGER_SECONDS = 30.0  # after rank 0 ended, the others get this long to end by themselves
GROUP_TIMEOUT = timedelta(minutes=10)  # a collective that waits longer than this fails instead of hanging
FAILED_EXIT = 3  # a rank other than 0 that failed (its log says why); rank 0 reports its failures


@dataclass(frozen=True)
class RankEnv:
    """One rank's torchrun-style environment."""

    rank: int
    world_size: int
    master_port: int
    master_addr: str = "127.0.0.1"
    threads: int = 0  # OMP threads per rank on CPU (0: leave it to torch)

    @property
    def local_rank(self) -> int:
        return self.rank  # one machine: ranks are local

    @property
    def log_name(self) -> str:
        return training.LOG_FILE if self.rank == 0 else f"train.rank{self.rank}.log"

    def environ(self) -> dict[str, str]:
        env = {
            "MASTER_ADDR": self.master_addr, "MASTER_PORT": str(self.master_port), "RANK": str(self.rank),
            "WORLD_SIZE": str(self.world_size), "LOCAL_RANK": str(self.local_rank),
            "LOCAL_WORLD_SIZE": str(self.world_size),
        }  # fmt: skip
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now (the master binds it moments later, as torchrun --standalone does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def device_indices(device: str) -> list[int]:
    """``cuda:0,1`` → [0, 1]; ``cuda:2`` → [2]; ``cuda`` and ``cpu`` → []."""
    _, _, ids = device.partition(":")
    return [int(i) for i in ids.split(",") if i.strip()] if ids else []


def backend_for(device: str) -> str:
    return "nccl" if device.startswith("cuda") else "gloo"


def distributed_config(config: dict[str, Any], device: str) -> dict[str, Any]:
    """The config every rank builds: MMEngine's ``pytorch`` launcher with the device's backend.

    On CPU, DDP takes no ``device_ids`` (MMEngine's default wrapper would pass ``LOCAL_RANK``) and SyncBN,
    CUDA-only in torch, becomes per-rank BN; on CUDA SyncBN stays and synchronizes across the GPUs.
    """
    cfg = copy.deepcopy(config)
    cfg["launcher"] = "pytorch"
    env = cfg.setdefault("env_cfg", {})
    env["dist_cfg"] = {"backend": backend_for(device)}
    if not device.startswith("cuda"):
        cfg["model_wrapper_cfg"] = {
            "type": "MMDistributedDataParallel", "device_ids": None, "broadcast_buffers": False,
            "find_unused_parameters": bool(cfg.get("find_unused_parameters", False)),
        }  # fmt: skip
        cfg["model"] = _without_sync_bn(cfg["model"])
        if cfg["model"].get("type") == "RTMDet":  # it converts every BN to SyncBN when world size > 1
            cfg["model"]["use_syncbn"] = False
    return cfg


def _without_sync_bn(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _without_sync_bn(v) for k, v in node.items()}
        if out.get("type") == "SyncBN":
            out["type"] = "BN"
        return out
    if isinstance(node, list | tuple):
        return type(node)(_without_sync_bn(v) for v in node)
    return node


def job_ranks(hyperparameters: Any) -> int:
    """The ranks of a job: its ``gpus`` (``raven.v1.Hyperparameters``), 1 when unset."""
    return int(hyperparameters.gpus) if hyperparameters.HasField("gpus") else 1


def launch_training(spec: training.TrainingSpec, ranks: int = 1) -> training.TrainingProcess:
    """The training process of an attempt over ``ranks`` ranks (1: a single child, as before)."""
    if not 1 <= ranks <= MAX_RANKS:
        raise ValueError(f"a run takes 1 to {MAX_RANKS} GPUs, got {ranks}")
    if ranks == 1:
        return training.TrainingProcess(spec)
    indices = device_indices(spec.device)
    if spec.device.startswith("cuda") and len(indices) != ranks:
        raise ValueError(f"a run on {ranks} GPUs needs a slot of {ranks} GPUs, this one has {spec.device!r}")
    return DistributedTrainingProcess(spec, ranks)


class DistributedTrainingProcess(training.TrainingProcess):
    """``ranks`` training processes of one attempt, used exactly like ``TrainingProcess``."""

    def __init__(self, spec: training.TrainingSpec, ranks: int) -> None:
        config = spec.config if isinstance(spec.config, dict) else spec.config.to_dict()
        super().__init__(dataclasses.replace(spec, config=distributed_config(config, spec.device)))
        self.ranks = ranks

    def start(self) -> None:
        Path(self.spec.work_dir).mkdir(parents=True, exist_ok=True)
        self._oom_kills_at_start = oom_kills()
        port = free_port()
        threads = 0 if self.spec.device.startswith("cuda") else max(1, (os.cpu_count() or 1) // self.ranks)
        children = []
        for rank in range(self.ranks):
            env = RankEnv(rank, self.ranks, port, threads=threads)
            spec = self.spec if rank == 0 else dataclasses.replace(self.spec, evaluate=False)
            out = self._queue if rank == 0 else None
            children.append(
                start_child(self._ctx, rank_main, (spec, env, out, self._stop), f"raven-training-rank{rank}")
            )
        self._process = RankGroup(children)

    def log_of(self, rank: int) -> Path:
        return Path(self.spec.work_dir) / RankEnv(rank, self.ranks, 0).log_name

    async def events(self) -> AsyncIterator[Progress]:
        async for item in super().events():
            yield item
        self.outcome = self._blame_the_dead(self.outcome)

    def _blame_the_dead(self, outcome: Outcome | None) -> Outcome | None:
        """Rank 0's failure after another rank was killed is that death's consequence (a broken collective):
        the attempt crashed, and is retried from its checkpoint."""
        failed = self._process.failed
        if isinstance(outcome, Failure) and failed is not None and failed[0] != 0 and failed[1] < 0:
            return self._crash(*failed)
        return outcome

    def _outcome_without_report(self) -> Outcome:
        failed = self._process.failed
        if self._stop_requested or failed is None:
            return super()._outcome_without_report()
        return self._crash(*failed)

    def _crash(self, rank: int, code: int) -> Failure:
        before, after = self._oom_kills_at_start, oom_kills()
        oom_killed = None if before is None or after is None else after > before
        failure = training.crash_failure(code, self.log_of(rank), oom_killed)
        return dataclasses.replace(failure, message=f"rank {rank} of {self.ranks}: {failure.message}")


class RankGroup:
    """The ranks of one attempt behind the ``multiprocessing.Process`` calls ``TrainingProcess`` makes.

    A watcher thread reaps the ranks: the first that ends with a non-zero status (a signal, or a failed rank
    other than 0) while rank 0 runs is recorded in ``failed`` and the others are killed; once rank 0 ended
    (its report stands), the others get ``linger`` seconds. Only the watcher joins the processes.
    """

    def __init__(self, processes: list[Any], linger: float = LINGER_SECONDS) -> None:
        self.processes = processes
        self.failed: tuple[int, int] | None = None  # (rank, exit status) of the first rank that failed
        self._linger = linger
        self._done = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="rank-group", daemon=True)
        self._watcher.start()

    @property
    def pid(self) -> int | None:
        return self.processes[0].pid

    @property
    def exitcode(self) -> int | None:
        if not self._done.is_set():
            return None
        return self.failed[1] if self.failed else self.processes[0].exitcode

    def is_alive(self) -> bool:
        return not self._done.is_set()

    def join(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    def kill(self) -> None:
        for process in self.processes:
            with contextlib.suppress(Exception):
                if process.exitcode is None:
                    process.kill()

    def _watch(self) -> None:
        alive = dict(enumerate(self.processes))
        rank0_ended: float | None = None
        try:
            while alive:
                ready = multiprocessing.connection.wait([p.sentinel for p in alive.values()], timeout=1.0)
                ended = [(rank, p) for rank, p in alive.items() if p.sentinel in ready]
                for rank, process in ended:
                    process.join()
                    del alive[rank]
                # ranks that ended together: a death counts even if rank 0 reported and exited meanwhile
                bad = [(rank, int(p.exitcode or 0)) for rank, p in ended if p.exitcode != 0]
                if bad and self.failed is None and rank0_ended is None:
                    self.failed = bad[0]
                    self.kill()
                if rank0_ended is None and any(rank == 0 for rank, _ in ended):
                    rank0_ended = time.monotonic()
                if alive and rank0_ended is not None and time.monotonic() - rank0_ended > self._linger:
                    self.kill()
        finally:
            self._done.set()


# --- rank side ---


class Discard:
    """The report queue of a rank other than 0: progress is dropped; a failure is remembered for the exit."""

    def __init__(self) -> None:
        self.failure: Failure | None = None

    def put(self, item: Any) -> None:
        if isinstance(item, Failure):
            self.failure = item

    def close(self) -> None:
        pass

    def join_thread(self) -> None:
        pass


class SynchronizedStop:
    """The stop request as all ranks see it: ``is_set`` is an all-reduce (MAX) of each rank's flag, asked by
    every rank at every iteration (``ProgressHook``), so all ranks stop after the same iteration."""

    def __init__(self, event: Any, device: str) -> None:
        self._event = event
        self._device = device

    def is_set(self) -> bool:
        import torch
        import torch.distributed as dist

        flag = torch.tensor(
            [1 if self._event is not None and self._event.is_set() else 0], device=self._device
        )
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def set(self) -> None:
        if self._event is not None:
            self._event.set()


def agreed_clock() -> float:
    """``time.monotonic()`` as every rank agrees on it (an all-reduce MAX; the local clock outside a group):
    a deadline checked with it after every iteration (``TimeBudgetHook``) passes on all ranks at the same
    iteration, so none is left alone in a collective."""
    now = time.monotonic()
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return now
    import torch

    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([now], dtype=torch.float64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return float(value.item())


def join_group(spec: training.TrainingSpec, stop: Any) -> SynchronizedStop:
    """Joins the process group from the torchrun environment; MMEngine's Runner then uses it as it is."""
    import torch
    import torch.distributed as dist

    device = "cpu"
    if spec.device.startswith("cuda"):
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)  # CUDA_VISIBLE_DEVICES holds the slot's GPUs (training._child_main)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend_for(spec.device), init_method="env://", timeout=GROUP_TIMEOUT)
    return SynchronizedStop(stop, device)


def rank_main(spec: training.TrainingSpec, env: RankEnv, out: Any, stop: Any) -> None:
    """A spawned rank: the torchrun environment, then the training child's usual life."""
    os.environ.update(env.environ())
    run_rank(spec, out, stop, env.log_name)


def run_rank(spec: training.TrainingSpec, out: Any, stop: Any, log_name: str) -> None:
    """Trains as this rank (``RANK`` etc. set); rank 0 reports to ``out``, another rank exits non-zero when it
    failed, so the group ends the attempt."""
    # MMEngine's distributed metric gathers results through a ".dist_test" folder in the working directory.
    spec.work_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(spec.work_dir)
    discard = Discard() if int(os.environ.get("RANK", "0")) != 0 or out is None else None
    training._child_main(spec, discard or out, stop, log_name=log_name, join=join_group)
    if discard is not None and discard.failure is not None:
        os._exit(FAILED_EXIT)
