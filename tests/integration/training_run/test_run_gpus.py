"""Issue 17 (multi-GPU runs): ``gpus`` is set by ravenctl, validated by Create, stored with the run, and its
job is published on the queue of its size (real training_run server and relay, JetStream, SQLite and
PostgreSQL via ``harness``)."""

from __future__ import annotations

import json

import grpc
import pytest

from common.proto.raven.v1 import types_pb2
from tests.integration.training_run.conftest import Harness, pull_jobs
from tests.integration.training_run.test_discovery_cli import logs_to_stderr, ravenctl

__all__ = ["logs_to_stderr"]  # the fixture, imported for the tests here


async def test_ravenctl_gpus_reaches_the_queue_of_its_size(logs_to_stderr: None, harness: Harness) -> None:
    h = harness
    plain = await h.create()  # waits for the dataset's implicit version; the runs below reuse it at once
    assert (await h.get(plain.name)).hyperparameters.gpus == 1  # the default, stored
    base = [
        "-o",
        "json",
        "runs",
        "create",
        "--dataset",
        h.dataset,
        "--template",
        "rtmdet_tiny",
        "--epochs",
        "2",
    ]
    two = await ravenctl(h, *base, "--name", "two", "--gpus", "2")
    assert two.exit_code == 0, two.output
    created = json.loads(two.stdout)
    run = await h.get(created["name"])
    assert run.hyperparameters.gpus == 2

    size_2 = h.names.training_jobs_subject(2)
    sized = await pull_jobs(h.nc, h.names, 1, subject=size_2, durable="test-gpus-2")
    single = await pull_jobs(h.nc, h.names, 1, durable="test-gpus-1")
    assert [j.run_id for j in sized] == [created["name"].split("/")[1]]
    assert sized[0].hyperparameters.gpus == 2
    assert [j.hyperparameters.gpus for j in single] == [1]

    bad = await ravenctl(h, *base, "--name", "nine", "--gpus", "9")
    assert bad.exit_code == 2 and "INVALID_ARGUMENT" in bad.stderr
    assert "hyperparameters.gpus" in bad.stderr and "between 1 and 8" in bad.stderr


async def test_create_refuses_zero_gpus(harness: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.create(hyperparameters=types_pb2.Hyperparameters(epochs=2, gpus=0))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "training_run.hyperparameters.gpus: must be between 1 and 8, got 0" in (
        caught.value.details() or ""
    )
