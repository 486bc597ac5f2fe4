"""A client in another language drives a run end to end: clients/typescript (Node.js, @grpc/grpc-js, protos/
loaded at run time, no generated code) against the real training_run server over a real channel, with real
NATS JetStream and SQLite.

The program lists the templates, reads a rejected request's BadRequest details, creates a run, gets it,
watches it to its terminal event (dropping the stream once and resuming it with the last resume_token), and
gets the trained model. This test plays the trainer worker (ClaimTrainingRun with a worker token, events on
the run's subject) and trained_model's registrar (model_registered); the trained_model stand-in answers
GetTrainedModel. Status messages are read by such clients as they are: PERMISSION_DENIED names the permission
by its wire name.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from common.auth import Permission
from common.proto.raven.v1 import events_pb2, trained_model_pb2, types_pb2
from tests.helpers import bearer, token
from tests.integration.training_run.conftest import Harness, TinyTrainedModels, awaiting_version
from tests.node_tools import ROOT, build_typescript_client

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def typescript_program() -> Path:
    return build_typescript_client() / "run_end_to_end.js"


async def next_step(stdout: asyncio.StreamReader, name: str, seen: list[dict[str, Any]]) -> dict[str, Any]:
    while True:
        line = await asyncio.wait_for(stdout.readline(), 60)
        assert line, f"the program ended before printing {name!r}; it printed {seen}"
        step = json.loads(line)
        seen.append(step)
        if step["step"] == name:
            return step


async def play_worker_and_registrar(h: Harness, name: str, model_id: str) -> None:
    run_id = name.split("/", 1)[1]
    if awaiting_version(run := await h.get(name)):  # a plain dataset reference: its version is prepared first
        await h.prepare_version(run)
    await h.claim(name)
    await h.publish_event(run_id, 1, started=events_pb2.RunStarted(worker_id="w1", device="cpu"))
    await h.publish_event(run_id, 1, phase_changed=events_pb2.PhaseChanged(phase=types_pb2.TRAINING))
    for i in range(3):
        snapshot = types_pb2.ProgressSnapshot(phase=types_pb2.TRAINING, epoch=1, iter=i + 1, max_iters=3)
        await h.publish_event(run_id, 1, progress=events_pb2.ProgressReported(progress=snapshot))
    await h.publish_event(run_id, 1, completed=events_pb2.RunCompleted())
    metrics = types_pb2.DetectionMetrics(bbox_map=0.5, bbox_map_s=-1)
    h.trained_models.models[f"trainedModels/{model_id}"] = trained_model_pb2.TrainedModel(
        name=f"trainedModels/{model_id}",
        display_name="typescript client run",
        version=1,
        training_run=name,
        evaluation=types_pb2.EvaluationResults(val=metrics),
    )
    await h.publish_event(run_id, 1, model_registered=events_pb2.ModelRegistered(trained_model_id=model_id))


async def test_a_typescript_client_drives_a_run_end_to_end(
    sqlite_harness: Harness, trained_models: tuple[TinyTrainedModels, str], typescript_program: Path
) -> None:
    h = sqlite_harness
    model_id = "m-" + uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "RAVEN_TOKEN": token("alice"),
        "RAVEN_TRAINING_RUN_ADDR": f"127.0.0.1:{h.app.port}",
        "RAVEN_TRAINED_MODEL_ADDR": trained_models[1],
    }
    process = await asyncio.create_subprocess_exec(
        "node", str(typescript_program), "--dataset", h.dataset, "--epochs", "1", "--disconnect-after", "3",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[dict[str, Any]] = []
    try:
        created = await next_step(process.stdout, "created", seen)
        await play_worker_and_registrar(h, created["name"], model_id)
        rest, errors = await asyncio.wait_for(process.communicate(), 120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    seen += [json.loads(line) for line in rest.decode().splitlines()]
    assert process.returncode == 0, (seen, errors.decode())
    steps = {step["step"]: step for step in seen}

    assert "rtmdet_tiny" in steps["templates"]["template_ids"]
    rejected = steps["rejected"]
    assert rejected["code"] == "INVALID_ARGUMENT"
    assert "training_run.display_name" in [v["field"] for v in rejected["field_violations"]], rejected
    assert created["state"] == "PENDING"
    assert steps["got"] == {
        "step": "got", "name": created["name"], "state": "PENDING", "owner": "alice",
        "model_template": "rtmdet_tiny",
    }  # fmt: skip

    events = [step for step in seen if step["step"] == "event"]
    sequences = [int(e["sequence"]) for e in events]
    assert sequences == sorted(set(sequences)), "across the resume: in order, nothing repeated"
    assert [e["resume_token"] for e in events] == [e["sequence"] for e in events]
    resumed = [step for step in seen if step["step"] == "resumed"]
    assert resumed and resumed[0]["resume_token"] == events[2]["resume_token"], seen
    kinds = [e["kind"] for e in events]
    for kind in ("started", "phase_changed", "progress", "completed", "model_registered"):
        assert kind in kinds, kinds
    assert events[-1]["kind"] == "state_changed" and events[-1]["to_state"] == "SUCCEEDED"

    assert steps["finished"]["state"] == "SUCCEEDED"
    assert steps["finished"]["trained_model"] == f"trainedModels/{model_id}"
    assert steps["model"]["name"] == f"trainedModels/{model_id}"
    assert steps["model"]["val_bbox_map"] == 0.5


async def test_permission_denied_names_the_permission_as_a_client_in_any_language_reads_it(
    sqlite_harness: Harness,
) -> None:
    viewer = bearer(token("bob", [Permission.VIEW_TRAINING_RUNS]))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await sqlite_harness.create(metadata=viewer)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert denied.value.details() == "caller 'bob' lacks the 'training_runs.create' permission"
