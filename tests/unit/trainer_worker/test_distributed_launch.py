"""The pieces of a multi-rank attempt that need no training: rank environments, the config every rank
builds, GPU slots per run size, queue subjects per size, the ``gpus`` limit, and the rank group that ends the
whole attempt when one rank dies (real processes, killed for real)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from common.hyperparameters import RUN_DEFAULTS, validate_request
from common.nats_streams import StreamNames, worker_consumer
from common.proto.raven.v1 import types_pb2
from services.trainer_worker.adapters.distributed_launch import (
    RankEnv,
    RankGroup,
    device_indices,
    distributed_config,
    job_ranks,
)
from services.trainer_worker.bootstrap import slot_devices, worker_info

CTX = multiprocessing.get_context("spawn")


def test_rank_env_is_torchrun_style() -> None:
    env = RankEnv(rank=1, world_size=2, master_port=29511, threads=1).environ()
    assert env == {
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511", "RANK": "1", "WORLD_SIZE": "2",
        "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "1",
    }  # fmt: skip
    assert RankEnv(0, 2, 1).log_name == "train.log" and RankEnv(1, 2, 1).log_name == "train.rank1.log"


def test_cpu_ranks_use_gloo_ddp_without_device_ids_and_plain_bn() -> None:
    model = {"type": "RTMDet", "neck": {"norm_cfg": {"type": "SyncBN"}}, "heads": [{"type": "SyncBN"}]}
    config = {"model": model, "env_cfg": {"dist_cfg": {"backend": "nccl"}}}
    cpu = distributed_config(config, "cpu")
    assert cpu["launcher"] == "pytorch" and cpu["env_cfg"]["dist_cfg"] == {"backend": "gloo"}
    assert cpu["model_wrapper_cfg"]["type"] == "MMDistributedDataParallel"
    assert cpu["model_wrapper_cfg"]["device_ids"] is None
    assert cpu["model"]["neck"]["norm_cfg"]["type"] == "BN" and cpu["model"]["heads"][0]["type"] == "BN"
    assert config["model"]["neck"]["norm_cfg"]["type"] == "SyncBN"  # the input is left alone
    assert cpu["model"]["use_syncbn"] is False  # RTMDet would turn every BN into SyncBN itself
    cuda = distributed_config(config, "cuda:0,1")
    assert cuda["env_cfg"]["dist_cfg"] == {"backend": "nccl"} and "model_wrapper_cfg" not in cuda
    assert cuda["model"]["neck"]["norm_cfg"]["type"] == "SyncBN"  # synchronized across the GPUs


@pytest.mark.parametrize(
    ("device", "slots", "gpus", "per_run", "expected"),
    [
        ("cuda", 0, 4, 4, ["cuda:0,1,2,3"]),
        ("auto", 0, 8, 4, ["cuda:0,1,2,3", "cuda:4,5,6,7"]),
        ("cuda", 0, 5, 2, ["cuda:0,1", "cuda:2,3"]),
        ("cpu", 0, 0, 2, ["cpu"]),
        ("auto", 0, 0, 2, ["cpu"]),
        ("cuda", 0, 2, 1, ["cuda:0", "cuda:1"]),
    ],
)
def test_a_slot_holds_the_gpus_of_one_run(
    device: str, slots: int, gpus: int, per_run: int, expected: list[str]
) -> None:
    assert slot_devices(device, slots, gpus, per_run) == expected


@pytest.mark.parametrize(("device", "gpus"), [("cuda", 2), ("cuda:1", 8)])
def test_a_worker_without_enough_gpus_for_its_run_size_refuses_to_start(device: str, gpus: int) -> None:
    with pytest.raises(ValueError, match="runs of 4 GPUs"):
        slot_devices(device, 0, gpus, 4)


def test_worker_info_counts_the_gpus_of_grouped_slots() -> None:
    info = worker_info(["cuda:0,1,2,3", "cuda:4,5,6,7"], "H100")
    assert (info.device_kind, info.gpu_count, info.slots) == ("cuda", 8, 2)
    assert worker_info(["cuda:0", "cuda:1", "cuda:0"], "T4").gpu_count == 2
    assert device_indices("cuda:2,3") == [2, 3] and device_indices("cpu") == []


def test_every_size_has_its_own_subject_and_consumer() -> None:
    names = StreamNames(prefix="raven")
    assert names.training_jobs_subject(1) == names.jobs_subject == "raven.jobs.training"
    assert names.training_jobs_subject(4) == "raven.jobs.training.gpus.4"
    assert worker_consumer(1) == "trainer-workers" and worker_consumer(4) == "trainer-workers-gpus-4"
    assert all(names.is_training_jobs_subject(names.training_jobs_subject(n)) for n in range(1, 9))
    assert not names.is_training_jobs_subject("raven.jobs.training.gpus.x")
    assert not names.is_training_jobs_subject("raven.jobs.dataset_preparation")


def test_gpus_is_validated_and_defaults_to_one() -> None:
    assert validate_request({}, None, pretrained=False).run["gpus"] == RUN_DEFAULTS["gpus"] == 1
    assert validate_request({"gpus": 8}, None, pretrained=False).violations == []
    for bad in (0, 9):
        (violation,) = validate_request({"gpus": bad}, None, pretrained=False).violations
        assert violation.field == "training_run.hyperparameters.gpus"
        assert violation.description == f"must be between 1 and 8, got {bad}"
    assert job_ranks(types_pb2.Hyperparameters()) == 1 and job_ranks(types_pb2.Hyperparameters(gpus=4)) == 4


def _group(*targets: tuple[object, tuple[object, ...]], linger: float = 30.0) -> RankGroup:
    processes = [CTX.Process(target=t, args=a) for t, a in targets]
    for p in processes:
        p.start()
    return RankGroup(processes, linger=linger)


def test_a_killed_rank_ends_every_rank_and_is_the_one_blamed() -> None:
    group = _group((time.sleep, (60,)), (time.sleep, (60,)), (time.sleep, (60,)))
    os.kill(group.processes[2].pid, signal.SIGKILL)
    group.join(20)
    assert not group.is_alive()
    assert group.failed == (2, -signal.SIGKILL) and group.exitcode == -signal.SIGKILL
    assert [p.exitcode for p in group.processes] == [-signal.SIGKILL] * 3


def test_a_failed_rank_ends_the_others() -> None:
    group = _group((time.sleep, (60,)), (os._exit, (3,)))
    group.join(20)
    assert group.failed == (1, 3) and group.processes[0].exitcode == -signal.SIGKILL


def test_ranks_that_linger_after_rank_0_ended_are_killed() -> None:
    started = time.monotonic()
    group = _group((time.sleep, (0,)), (time.sleep, (60,)), linger=1.0)
    group.join(20)
    assert time.monotonic() - started < 15 and group.processes[0].exitcode == 0
    assert group.processes[1].exitcode == -signal.SIGKILL  # the straggler, killed after the linger
    assert group.failed is None and group.exitcode == 0  # rank 0's report stands


def test_a_group_that_ends_well_reports_rank_0() -> None:
    group = _group((time.sleep, (0.2,)), (time.sleep, (0,)))
    group.join(20)
    assert group.failed is None and group.exitcode == 0 and not group.is_alive()
