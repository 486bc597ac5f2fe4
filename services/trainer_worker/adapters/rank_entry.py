"""One rank of a training launched by ``torchrun`` (``python -m torch.distributed.run``), e.g. across
nodes with the c10d rendezvous, as a Kubeflow TrainJob / JobSet pod would run it (docs/scaling.md)::

    python -m torch.distributed.run --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d \\
        --rdzv-endpoint=HOST:PORT --rdzv-id=RUN \\
        -m services.trainer_worker.adapters.rank_entry /shared/spec.json

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; the rank trains
exactly as a rank the worker spawns (``distributed_launch.run_rank``). With no worker to report to, rank 0
writes its progress and outcome as JSON lines to ``<work_dir>/report.jsonl``. The spec file is JSON data
(:func:`write_spec`): the filled config, the work dir and the device, never code.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import sys
from pathlib import Path
from typing import Any

from common.config_data import restore_types
from services.trainer_worker.adapters.distributed_launch import distributed_config, run_rank
from services.trainer_worker.adapters.training import LOG_FILE, TrainingSpec

REPORT_FILE = "report.jsonl"
_SPEC_FIELDS = ("device", "has_test", "evaluate", "progress_every_iters", "progress_every_seconds")


def write_spec(spec: TrainingSpec, path: Path) -> Path:
    """``spec`` as the JSON file the ranks read (the config as data: lists where it had tuples)."""
    config = spec.config if isinstance(spec.config, dict) else spec.config.to_dict()
    data = {"config": config, "work_dir": str(spec.work_dir), **{k: getattr(spec, k) for k in _SPEC_FIELDS}}
    path.write_text(json.dumps(data, default=str))
    return path


def read_spec(path: Path) -> TrainingSpec:
    data = json.loads(path.read_text())
    return TrainingSpec(
        config=restore_types(data["config"]),
        work_dir=Path(data["work_dir"]).resolve(),
        **{k: data[k] for k in _SPEC_FIELDS if k in data},
    )


class JsonLinesReport:
    """Rank 0's report queue under torchrun: each progress or outcome dataclass as one JSON line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def put(self, item: Any) -> None:
        record = {"type": type(item).__name__, **dataclasses.asdict(item)}
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=_plain) + "\n")

    def close(self) -> None:
        pass

    def join_thread(self) -> None:
        pass


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else str(value)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: rank_entry SPEC.json (under torchrun)", file=sys.stderr)
        return 2
    spec = read_spec(Path(argv[0]))
    spec = dataclasses.replace(spec, config=distributed_config(spec.config, spec.device))
    rank = int(os.environ["RANK"])
    if rank != 0:
        spec = dataclasses.replace(spec, evaluate=False)
    Path(spec.work_dir).mkdir(parents=True, exist_ok=True)
    out = JsonLinesReport(Path(spec.work_dir) / REPORT_FILE) if rank == 0 else None
    run_rank(spec, out, None, LOG_FILE if rank == 0 else f"train.rank{rank}.log")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
