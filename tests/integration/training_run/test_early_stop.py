"""Issue 17: a run whose worker reports an early stop records it; ravenctl sets early stopping and shows it.

Real training_run server, real JetStream events from a stand-in worker, SQLite and PostgreSQL (``harness``).
"""

from __future__ import annotations

import json

from common.hyperparameters import EARLY_STOPPING_DEFAULTS
from common.proto.raven.v1 import events_pb2, types_pb2
from common.proto.raven.v1 import training_run_pb2 as pb
from tests.integration.training_run.conftest import Harness
from tests.integration.training_run.test_discovery_cli import logs_to_stderr, ravenctl

__all__ = ["logs_to_stderr"]  # the fixture, imported for the tests here


async def finish(h: Harness, run: pb.TrainingRun, completed: events_pb2.RunCompleted) -> pb.TrainingRun:
    """Claims the run, reports started and completed from a stand-in worker, then the registered model."""
    rid = run.name.split("/")[1]
    await h.claim(run.name)
    await h.publish_event(rid, 1, started=events_pb2.RunStarted(worker_id="w1", device="cpu"))
    await h.publish_event(rid, 1, completed=completed)
    registering = await h.wait_for(run.name, lambda r: r.progress.phase == types_pb2.UPLOADING)
    assert registering.stopped_early == completed.stopped_early
    await h.publish_event(rid, 1, model_registered=events_pb2.ModelRegistered(trained_model_id=f"m-{rid}"))
    return await h.wait_for(run.name, lambda r: r.state == types_pb2.SUCCEEDED)


async def test_completed_with_an_early_stop_is_recorded_and_shown(
    logs_to_stderr: None, harness: Harness
) -> None:
    h = harness
    stopped = await h.create(hyperparameters=types_pb2.Hyperparameters(epochs=4))
    done = await finish(h, stopped, events_pb2.RunCompleted(stopped_early=True, stopped_epoch=2))
    assert done.stopped_early and done.stopped_epoch == 2
    assert (await h.get(stopped.name)).stopped_epoch == 2  # stored, not only in the answer of the moment

    full = await h.create(hyperparameters=types_pb2.Hyperparameters(epochs=4))
    # stopped_epoch without stopped_early is no early stop.
    plain = await finish(h, full, events_pb2.RunCompleted(stopped_epoch=4))
    assert not plain.stopped_early and plain.stopped_epoch == 0

    shown = await ravenctl(h, "runs", "get", stopped.name)
    assert shown.exit_code == 0, shown.output
    assert "stopped early at epoch 2" in shown.stdout
    other = await ravenctl(h, "runs", "get", full.name)
    assert other.exit_code == 0, other.output
    assert "stopped early" not in other.stdout
    data = json.loads((await ravenctl(h, "-o", "json", "runs", "get", stopped.name)).stdout)
    assert data["stopped_early"] is True and data["stopped_epoch"] == 2


async def test_ravenctl_create_turns_early_stopping_on_with_either_flag(
    logs_to_stderr: None, harness: Harness
) -> None:
    h = harness
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
        "6",
    ]
    patience = await ravenctl(h, *base, "--name", "p", "--early-stopping-patience", "2")
    assert patience.exit_code == 0, patience.output
    run = await h.get(json.loads(patience.stdout)["name"])
    assert run.hyperparameters.HasField("early_stopping")
    # The flag given, the other field at its default (EARLY_STOPPING_DEFAULTS) as Create fills it in.
    assert run.hyperparameters.early_stopping.patience == 2
    assert run.hyperparameters.early_stopping.min_delta == EARLY_STOPPING_DEFAULTS["min_delta"]

    delta = await ravenctl(h, *base, "--name", "d", "--early-stopping-min-delta", "0.05")
    assert delta.exit_code == 0, delta.output
    run = await h.get(json.loads(delta.stdout)["name"])
    assert run.hyperparameters.early_stopping.min_delta == 0.05
    assert run.hyperparameters.early_stopping.patience == EARLY_STOPPING_DEFAULTS["patience"]

    off = await ravenctl(h, *base, "--name", "o")
    assert off.exit_code == 0, off.output
    assert not (await h.get(json.loads(off.stdout)["name"])).hyperparameters.HasField("early_stopping")

    bad = await ravenctl(h, *base, "--name", "b", "--early-stopping-patience", "101")
    assert bad.exit_code == 2 and "INVALID_ARGUMENT" in bad.stderr
    assert "early_stopping.patience" in bad.stderr


async def test_a_small_dataset_gets_the_templates_default_unless_turned_off(
    logs_to_stderr: None, harness: Harness
) -> None:
    """The harness's dataset is small (a few train images): a run of rtmdet_tiny's default 30 epochs that
    leaves early stopping unset gets the template's default, stored and shown on the run; patience 0 asks
    for none; a run too short for the default to stop it before its last epoch gets none."""
    h = harness
    base = ["-o", "json", "runs", "create", "--dataset", h.dataset, "--template", "rtmdet_tiny"]
    made = await ravenctl(h, *base, "--name", "default")
    assert made.exit_code == 0, made.output
    run = await h.get(json.loads(made.stdout)["name"])
    assert run.hyperparameters.early_stopping.patience == 3  # 15 epochs at val_interval 5
    assert run.hyperparameters.early_stopping.min_delta == 0.001
    assert "EarlyStoppingHook" in run.resolved_config
    shown = json.loads((await ravenctl(h, "-o", "json", "runs", "get", run.name)).stdout)
    assert shown["hyperparameters"]["early_stopping"] == {"patience": 3, "min_delta": 0.001}

    off = await ravenctl(h, *base, "--name", "off", "--early-stopping-patience", "0")
    assert off.exit_code == 0, off.output
    stored = (await h.get(json.loads(off.stdout)["name"])).hyperparameters
    assert stored.HasField("early_stopping") and stored.early_stopping.patience == 0
    assert "EarlyStoppingHook" not in (await h.get(json.loads(off.stdout)["name"])).resolved_config

    short = await ravenctl(h, *base, "--name", "short", "--epochs", "6")
    assert short.exit_code == 0, short.output
    assert not (await h.get(json.loads(short.stdout)["name"])).hyperparameters.HasField("early_stopping")
