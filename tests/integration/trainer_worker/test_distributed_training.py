"""One attempt over 2 gloo ranks on CPU (real RTMDet-tiny training, ``torch.distributed``, MMEngine's
``pytorch`` launcher): it trains and evaluates with rank 0 alone reporting, a stop request stops both ranks
at the same iteration with a checkpoint, a SIGKILL of rank 1 ends the whole attempt and the next one resumes
from the last checkpoint; and the same rank code trains under ``torchrun`` as 2 "nodes" joined by the c10d
rendezvous.

Tiny (16 images of 96 px, batch 4, 1-2 epochs): the mechanics, not the accuracy (bench/bench_scaling.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from common.checkpoint_safety import load_untrusted_checkpoint
from services.trainer_worker.adapters.dataset_source import prepare_dataset
from services.trainer_worker.adapters.distributed_launch import (
    DistributedTrainingProcess,
    free_port,
    launch_training,
)
from services.trainer_worker.adapters.rank_entry import REPORT_FILE, write_spec
from services.trainer_worker.adapters.training import LOG_FILE, TrainingProcess, latest_checkpoint
from services.trainer_worker.domain.outcome import Cancelled, Failure, FailureKind, TrainingResult
from tests.fixtures.synthetic_coco import make_dataset
from tests.integration.trainer_worker.test_training_process import CLASSES, SIDE, add_coco_info, spec_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[3]
BATCH = 4


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("datasets")
    make_dataset(root / "tiny", n_images=16, size=SIDE, classes=CLASSES, seed=1)
    prepared = prepare_dataset(f"file://{root}", "tiny", root / "prepared", seed=0)
    add_coco_info(prepared)
    return prepared


def iters_per_epoch(prepared, ranks: int) -> int:  # type: ignore[no-untyped-def]
    """DefaultSampler gives each rank ceil(n / ranks) images; the train loader drops no last batch."""
    return math.ceil(math.ceil(prepared.counts["train"] / ranks) / BATCH)


async def test_two_gloo_ranks_train_and_evaluate_with_rank_0_alone_reporting(
    prepared, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    process = launch_training(spec_for(prepared, tmp_path, epochs=1), ranks=2)
    assert isinstance(process, DistributedTrainingProcess)
    process.start()
    ranks = process._process.processes
    events = [event async for event in process.events()]

    result = process.outcome
    assert isinstance(result, TrainingResult), result
    assert [p.exitcode for p in ranks] == [0, 0] and process.exit_code == 0
    per_rank = iters_per_epoch(prepared, 2)
    assert per_rank < iters_per_epoch(prepared, 1)  # each rank trained on its half of the images
    assert (
        result.iterations_run == per_rank
        and [e.max_iters for e in events if e.kind == "iter"][-1] == per_rank
    )
    assert [e.epoch for e in events if e.kind == "epoch"] == [1]  # one report per epoch: rank 0's only
    metrics = json.loads(Path(result.metrics_path).read_text())
    assert set(metrics["val"]["per_class_ap"]) == set(CLASSES)  # evaluated on rank 0 over the whole split
    assert Path(result.best_checkpoint).is_file()
    log = (tmp_path / LOG_FILE).read_text()
    assert "Distributed training: True" in log and "GPU number: 2" in log and "backend='gloo'" in log
    assert (tmp_path / "train.rank1.log").is_file()


async def test_a_stop_request_stops_both_ranks_at_the_same_iteration(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    process = launch_training(spec_for(prepared, tmp_path, epochs=4), ranks=2)
    process.start()
    ranks = process._process.processes
    killer = None
    async for event in process.events():
        if event.kind == "iter" and event.iter >= 1 and not process.stop_requested:
            process.request_stop()
            killer = asyncio.create_task(process.kill_after(120))

    outcome = process.outcome
    assert isinstance(outcome, Cancelled), outcome
    assert killer is not None and await killer is False  # both ranks left the loop by themselves
    assert [p.exitcode for p in ranks] == [0, 0]
    checkpoint = Path(outcome.last_checkpoint or "")
    assert checkpoint.is_file() and latest_checkpoint(tmp_path) == checkpoint
    meta = load_untrusted_checkpoint(checkpoint)["meta"]
    assert meta["iter"] == int(checkpoint.stem.split("_")[1]) and meta["epoch"] < 4


async def test_sigkill_of_rank_1_ends_the_attempt_and_the_next_resumes(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    epochs = 2
    first_dir, second_dir = tmp_path / "attempt-1", tmp_path / "attempt-2"
    first = launch_training(spec_for(prepared, first_dir, epochs=epochs, evaluate=False), ranks=2)
    first.start()
    ranks = first._process.processes
    async for event in first.events():
        if event.kind == "epoch" and event.epoch == 1:
            os.kill(ranks[1].pid, signal.SIGKILL)  # epoch 1's checkpoint is on disk

    failure = first.outcome
    assert isinstance(failure, Failure) and failure.kind is FailureKind.CHILD_CRASHED, failure
    assert (
        failure.kind.retryable
        and failure.message.startswith("rank 1 of 2: ")
        and "SIGKILL" in failure.message
    )
    assert ranks[1].exitcode == -signal.SIGKILL and ranks[0].exitcode is not None  # rank 0 did not linger
    checkpoint = latest_checkpoint(first_dir)
    assert checkpoint is not None and checkpoint.name == "epoch_1.pth"

    resumed = checkpoint.parent / "resume.pth"
    resumed.write_bytes(checkpoint.read_bytes())
    second = launch_training(spec_for(prepared, second_dir, epochs=epochs, resume_from=resumed), ranks=2)
    second.start()
    events = [event async for event in second.events()]
    result = second.outcome
    assert isinstance(result, TrainingResult), result
    assert [e.epoch for e in events if e.kind == "epoch"] == [2]
    assert result.epochs == epochs and result.iterations_run == iters_per_epoch(prepared, 2)
    metrics = json.loads(Path(result.metrics_path).read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]  # the killed attempt's epoch carried over


async def test_a_time_budget_ends_both_ranks_at_the_same_iteration_and_evaluates(
    prepared, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    spec = dataclasses.replace(spec_for(prepared, tmp_path, epochs=50), time_budget_seconds=4.0)
    process = launch_training(spec, ranks=2)
    process.start()
    ranks = process._process.processes
    _ = [event async for event in process.events()]

    result = process.outcome
    assert isinstance(result, TrainingResult), result  # not a rank left alone in an all-reduce
    assert result.stopped_by_time_budget and result.epochs < 50
    assert [p.exitcode for p in ranks] == [0, 0]
    assert set(result.metrics["val"]["per_class_ap"]) == set(CLASSES)


def test_launch_training_keeps_one_rank_in_one_child(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = spec_for(prepared, tmp_path, epochs=1)
    single = launch_training(spec, ranks=1)
    assert type(single) is TrainingProcess
    with pytest.raises(ValueError, match="1 to 8 GPUs"):
        launch_training(spec, ranks=9)


@pytest.mark.timeout(400)
def test_torchrun_c10d_rendezvous_with_two_nodes_trains_one_run(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two torchrun agents on this machine, each one "node" with one process, meet at a c10d rendezvous and
    train one run: what a Kubeflow TrainJob / JobSet pod pair runs (docs/scaling.md)."""
    work_dir = tmp_path / "work"
    spec = write_spec(spec_for(prepared, work_dir, epochs=1), tmp_path / "spec.json")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
        "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=run-c10d",
        "--local-addr=127.0.0.1", "--max-restarts=0",
        "-m", "services.trainer_worker.adapters.rank_entry", str(spec),
    ]  # fmt: skip
    nodes = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [node.communicate(timeout=360)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs

    records = [json.loads(line) for line in (work_dir / REPORT_FILE).read_text().splitlines()]
    result = records[-1]
    assert result["type"] == "TrainingResult", result
    assert result["epochs"] == 1 and result["iterations_run"] == iters_per_epoch(prepared, 2)
    assert set(result["metrics"]["val"]["per_class_ap"]) == set(CLASSES)
    assert [r["epoch"] for r in records if r["type"] == "Progress" and r["kind"] == "epoch"] == [1]
    assert "Distributed training: True" in (work_dir / LOG_FILE).read_text()
    assert (work_dir / "train.rank1.log").is_file()
