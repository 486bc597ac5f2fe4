"""ravenctl templates list|get and workers list against the real training_run server (a real claim)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator

import grpc
import pytest
import structlog
from typer.testing import CliRunner, Result

from common.mmdet_templates import TEMPLATES
from common.proto.raven.v1 import training_run_pb2 as pb
from services.cli.main import app
from tests.helpers import token
from tests.integration.training_run.conftest import Harness
from tests.integration.training_run.test_create_and_read import violations
from tests.integration.training_run.test_discovery import BOB_PERMISSIONS, CPU_INFO


async def ravenctl(harness: Harness, *args: str, tok: str = "") -> Result:
    """ravenctl in a thread (its own event loop) while this loop serves training_run."""
    base = [
        "--training-run-addr", f"127.0.0.1:{harness.app.port}", "--trained-model-addr", "127.0.0.1:1",
        "--token", tok or token("alice"),
    ]  # fmt: skip
    return await asyncio.to_thread(
        CliRunner().invoke, app, [*base, *args], env={"COLUMNS": "80", "RAVEN_TOKEN": None}
    )


@pytest.fixture
def logs_to_stderr() -> Iterator[None]:
    """Server log lines go to the stderr of now, never into the stdout CliRunner swaps in for ravenctl."""
    previous = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    yield
    structlog.configure(**previous)


async def test_ravenctl_templates_and_workers(logs_to_stderr: None, harness: Harness) -> None:
    listed = await ravenctl(harness, "templates", "list")
    assert listed.exit_code == 0, listed.output
    assert all(key in listed.stdout for key in TEMPLATES) and max(map(len, listed.stdout.splitlines())) <= 80
    as_json = json.loads((await ravenctl(harness, "-o", "json", "templates", "list")).stdout)
    assert [t["template_id"] for t in as_json["model_templates"]] == sorted(TEMPLATES)
    got = await ravenctl(harness, "templates", "get", "rtmdet_tiny")
    assert got.exit_code == 0, got.output
    assert "rtmdet/rtmdet_tiny_8xb32-300e_coco.py" in got.stdout and "multiple of 32" in got.stdout
    missing = await ravenctl(harness, "templates", "get", "yolo")
    assert missing.exit_code == 2 and "NOT_FOUND" in missing.stderr

    run = await harness.create(model_template="rtmdet_tiny")
    claim = pb.ClaimTrainingRunRequest(name=run.name, worker_id="cpu-box-1", job_attempt=1, worker=CPU_INFO)
    await harness.stub.ClaimTrainingRun(claim, metadata=harness.worker)
    table = await ravenctl(harness, "workers", "list")
    assert table.exit_code == 0, table.output
    assert "cpu-box-1" in table.stdout and run.name.split("/")[1] in table.stdout and "s ago" in table.stdout
    data = json.loads((await ravenctl(harness, "-o", "json", "workers", "list")).stdout)
    worker = next(w for w in data["workers"] if w["worker_id"] == "cpu-box-1")
    assert worker["training_runs"] == [run.name] and worker["free_slots"] == 0
    assert {q["capability"] for q in data["queue"]} == {"gpu", "any"}
    bob = await ravenctl(harness, "workers", "list", tok=token("bob", list(BOB_PERMISSIONS)))
    assert bob.exit_code == 2 and "PERMISSION_DENIED" in bob.stderr


async def test_workers_list_shows_the_run_size_each_worker_takes(
    logs_to_stderr: None, harness: Harness
) -> None:
    four = pb.WorkerInfo(device_kind="cuda", gpu_model="H100", gpu_count=8, slots=2, gpus_per_run=4)
    await harness.stub.HeartbeatWorker(
        pb.HeartbeatWorkerRequest(worker_id="box-gpus-4", worker=four), metadata=harness.worker
    )
    await harness.stub.HeartbeatWorker(  # an older worker that does not say: it took 1-GPU runs
        pb.HeartbeatWorkerRequest(worker_id="box-old", worker=CPU_INFO), metadata=harness.worker
    )
    data = json.loads((await ravenctl(harness, "-o", "json", "workers", "list")).stdout)
    by_id = {w["worker_id"]: w for w in data["workers"]}
    assert by_id["box-gpus-4"]["info"]["gpus_per_run"] == 4
    assert by_id["box-old"]["info"].get("gpus_per_run", 0) == 0  # 0: did not say (it took 1-GPU runs)
    table = await ravenctl(harness, "workers", "list")
    assert table.exit_code == 0, table.output
    flat = " ".join(table.stdout.split())
    assert "4 GPUs/run" in flat and flat.count("GPUs/run") == 1, table.stdout

    # a size past what a run may ask for is refused, naming the field
    bad = pb.WorkerInfo(device_kind="cpu", slots=1, gpus_per_run=9)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.stub.HeartbeatWorker(
            pb.HeartbeatWorkerRequest(worker_id="box-bad", worker=bad), metadata=harness.worker
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "worker.gpus_per_run" in violations(refused.value)
