"""ravenctl's runs commands, its token sources and the sync client facade, via typer's CliRunner against the
in-process fake servers (real gRPC, auth and error encoding)."""

from __future__ import annotations

import json
from pathlib import Path

from common.auth import USER_PERMISSIONS, Permission, TokenVerifier
from common.proto.raven.v1 import training_run_pb2, types_pb2
from tests.helpers import JWT_SECRET, token
from tests.integration.cli.fake_training_runs import scripted_events
from tests.integration.cli.fakes import FakeStack
from tests.integration.cli.ravenctl_support import add_run, json_lines, ravenctl


def test_create_prints_the_run_as_json_with_all_hyperparameters(thread_stack: FakeStack) -> None:
    result = ravenctl(
        thread_stack,
        "-o",
        "json",
        "runs",
        "create",
        "--name",
        "waste",
        "--dataset",
        "waste/v3",
        "--template",
        "rtmdet_tiny",
        "--base-model",
        "m0",
        "--classes",
        "bottle, tyre",
        "--epochs",
        "5",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "--frozen-stages",
        "-1",
        "--image-size",
        "256",
        "--seed",
        "7",
        "--val-interval",
        "2",
        "--max-attempts",
        "3",
        "--request-id",
        "req-1",
    )
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["name"] == "trainingRuns/r1" and run["state"] == "PENDING"
    assert run["base_model"] == "trainedModels/m0" and run["class_names"] == ["bottle", "tyre"]
    hp = run["hyperparameters"]
    assert (hp["epochs"], hp["batch_size"], hp["learning_rate"], hp["frozen_stages"]) == (5, 8, 0.01, -1)
    assert (hp["image_size"], hp["seed"], hp["val_interval"], hp["max_attempts"]) == (256, "7", 2, 3)
    assert thread_stack.runs.request_ids == ["req-1"]


def test_create_sends_a_zero_it_was_given_and_leaves_the_rest_unset(thread_stack: FakeStack) -> None:
    result = ravenctl(
        thread_stack, "runs", "create", "--name", "n", "--dataset", "d", "--seed", "0", "--frozen-stages", "0"
    )
    assert result.exit_code == 0, result.output
    sent = thread_stack.runs.runs["trainingRuns/r1"].hyperparameters
    assert sent.HasField("seed") and sent.seed == 0 and sent.HasField("frozen_stages")
    assert not sent.HasField("epochs") and not sent.HasField("max_attempts")


def test_errors_show_code_and_field_violations_and_exit_2(thread_stack: FakeStack) -> None:
    result = ravenctl(thread_stack, "runs", "create", "--name", "", "--dataset", "d", "--epochs", "900")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: INVALID_ARGUMENT: request has invalid fields")
    assert lines[1:] == [
        "  - training_run.display_name: must not be empty",
        "  - training_run.hyperparameters.epochs: must be in 1..500",
    ]
    assert "Traceback" not in result.output


def test_not_found_and_failed_precondition_exit_2(thread_stack: FakeStack) -> None:
    add_run(thread_stack, "done", state=types_pb2.SUCCEEDED)
    missing = ravenctl(thread_stack, "runs", "get", "nope")
    assert missing.exit_code == 2
    assert missing.stderr.strip() == "error: NOT_FOUND: training run 'trainingRuns/nope' not found"
    late = ravenctl(thread_stack, "runs", "cancel", "trainingRuns/done")
    assert late.exit_code == 2 and late.stderr.startswith(
        "error: FAILED_PRECONDITION: trainingRuns/done is SUCCEEDED"
    )


def test_list_all_pages_as_json_and_as_a_table(thread_stack: FakeStack) -> None:
    for i in range(5):
        add_run(thread_stack, f"r{i}", state=types_pb2.PENDING if i % 2 else types_pb2.RUNNING)
    result = ravenctl(thread_stack, "-o", "json", "runs", "list", "--all", "--page-size", "2")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [r["name"] for r in listed["training_runs"]] == [f"trainingRuns/r{i}" for i in range(5)]
    assert thread_stack.runs.faults.calls["ListTrainingRuns"] == 3
    pending = ravenctl(thread_stack, "runs", "list", "--state", "pending")
    assert pending.exit_code == 0, pending.output
    assert "trainingRuns/r1" in pending.stdout and "trainingRuns/r2" not in pending.stdout
    bad = ravenctl(thread_stack, "runs", "list", "--state", "sleeping")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: unknown state 'sleeping'")


def test_get_cancel_delete(thread_stack: FakeStack) -> None:
    add_run(thread_stack, "p", state=types_pb2.PENDING)
    shown = ravenctl(thread_stack, "runs", "get", "p")
    assert shown.exit_code == 0 and "trainingRuns/p" in shown.stdout and "PENDING" in shown.stdout
    cancelled = ravenctl(thread_stack, "-o", "json", "runs", "cancel", "p", "--reason", "not needed")
    assert cancelled.exit_code == 0 and json.loads(cancelled.stdout)["state"] == "CANCELLED"
    deleted = ravenctl(thread_stack, "-o", "json", "runs", "delete", "p")
    assert json.loads(deleted.stdout) == {"name": "trainingRuns/p", "deleted": True}
    assert "trainingRuns/p" not in thread_stack.runs.runs


def test_watch_json_lines_exit_0_on_succeeded_across_a_dropped_stream(thread_stack: FakeStack) -> None:
    run = add_run(thread_stack)
    thread_stack.runs.events[run.name] = scripted_events(run, iterations=4)
    thread_stack.runs.watch_drops = [("abort", 3)]
    result = ravenctl(thread_stack, "-o", "json", "runs", "watch", "r1")
    assert result.exit_code == 0, result.output
    events = json_lines(result.stdout)
    assert [int(e["event"]["sequence"]) for e in events] == list(range(1, 8))
    assert events[-1]["event"]["state_changed"]["to_state"] == "SUCCEEDED"
    assert thread_stack.runs.watch_tokens == ["", "3"]
    assert "SUCCEEDED: model trainedModels/m1" in result.stderr


def test_watch_exits_1_and_prints_the_failure(thread_stack: FakeStack) -> None:
    run = add_run(thread_stack)
    thread_stack.runs.events[run.name] = scripted_events(run, iterations=2, final=types_pb2.FAILED)
    result = ravenctl(thread_stack, "runs", "watch", "r1")
    assert result.exit_code == 1, result.output
    assert "run trainingRuns/r1 FAILED: INVALID_DATASET: annotation 3 has no image" in result.stderr
    assert "RUNNING → FAILED" in result.stdout, "the table view logs state changes"


def test_watch_exits_1_on_cancelled(thread_stack: FakeStack) -> None:
    run = add_run(thread_stack)
    thread_stack.runs.events[run.name] = scripted_events(run, iterations=1, final=types_pb2.CANCELLED)
    result = ravenctl(thread_stack, "-o", "json", "runs", "watch", "r1")
    assert result.exit_code == 1
    assert "run trainingRuns/r1 CANCELLED: done" in result.stderr


def test_create_with_watch_streams_the_run_then_its_events(thread_stack: FakeStack) -> None:
    expected = training_run_pb2.TrainingRun(name="trainingRuns/r1", display_name="w")
    thread_stack.runs.events[expected.name] = scripted_events(expected, iterations=2)
    result = ravenctl(
        thread_stack, "-o", "json", "runs", "create", "--name", "w", "--dataset", "d", "--watch"
    )
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert lines[0]["name"] == "trainingRuns/r1" and lines[0]["state"] == "PENDING"
    assert lines[-1]["training_run"]["trained_model"] == "trainedModels/m1"


def test_logs_pages_and_json(thread_stack: FakeStack) -> None:
    add_run(thread_stack, state=types_pb2.SUCCEEDED)
    thread_stack.runs.logs["trainingRuns/r1"] = [f"line {i}" for i in range(7)]
    plain = ravenctl(thread_stack, "runs", "logs", "r1", "--page-size", "3")
    assert plain.exit_code == 0 and plain.stdout.splitlines() == [f"line {i}" for i in range(7)]
    followed = ravenctl(thread_stack, "-o", "json", "runs", "logs", "r1", "--follow", "--page-size", "3")
    assert [x["line"] for x in json_lines(followed.stdout)] == [f"line {i}" for i in range(7)]
    whole = json.loads(ravenctl(thread_stack, "-o", "json", "runs", "logs", "r1").stdout)
    assert whole["complete"] is True and len(whole["lines"]) == 7


def test_runs_plot_draws_curves_from_progress_events(thread_stack: FakeStack, tmp_path: Path) -> None:
    run = add_run(thread_stack)
    thread_stack.runs.events[run.name] = scripted_events(run, iterations=6)
    out = tmp_path / "curves.png"
    result = ravenctl(
        thread_stack, "-o", "json", "runs", "plot", "r1", "--out", str(out), "--source", "events"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["source"] == "events"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_token_mints_chosen_permissions(thread_stack: FakeStack) -> None:
    verifier = TokenVerifier(secret=JWT_SECRET)
    everything = json.loads(ravenctl(thread_stack, "-o", "json", "token", "--all", "--subject", "bob").stdout)
    principal = verifier.verify(everything["token"])
    assert principal.subject == "bob" and principal.permissions == USER_PERMISSIONS
    some = ravenctl(thread_stack, "token", "-p", "models.view", "-p", "PUBLISH_MODELS", "--ttl", "60")
    assert some.exit_code == 0
    assert verifier.verify(some.stdout.strip()).permissions == {
        Permission.VIEW_MODELS,
        Permission.PUBLISH_MODELS,
    }
    worker = json.loads(ravenctl(thread_stack, "-o", "json", "token", "--worker", "--ttl", "600").stdout)
    assert worker["permissions"] == [Permission.WORKER] and worker["subject"] == "worker"
    assert worker["expires_in"] == 600 and worker["token_id"]
    assert verifier.verify(worker["token"]).permissions == {Permission.WORKER}
    for mixed in (["--worker", "--all"], ["--worker", "--superadmin"], ["-p", "worker"]):
        refused = ravenctl(thread_stack, "token", *mixed)
        assert refused.exit_code == 2 and "worker" in refused.stderr, refused.stderr
    assert ravenctl(thread_stack, "token").exit_code == 2
    unknown = ravenctl(thread_stack, "token", "-p", "fly")
    assert unknown.exit_code == 2 and "unknown permission 'fly'" in unknown.stderr
    no_secret = ravenctl(thread_stack, "token", "--all", env={"RAVEN_JWT_SECRET": ""})
    assert no_secret.exit_code == 2 and "RAVEN_JWT_SECRET" in no_secret.stderr


def test_token_comes_from_flag_env_or_local_secret(thread_stack: FakeStack) -> None:
    add_run(thread_stack)
    minted = ravenctl(thread_stack, "-o", "json", "runs", "get", "r1", auth=False)
    assert minted.exit_code == 0, minted.output
    from_env = ravenctl(
        thread_stack, "runs", "get", "r1", auth=False, env={"RAVEN_TOKEN": token(), "RAVEN_JWT_SECRET": ""}
    )
    assert from_env.exit_code == 0, from_env.output
    none = ravenctl(thread_stack, "runs", "get", "r1", auth=False, env={"RAVEN_JWT_SECRET": ""})
    assert none.exit_code == 2 and none.stderr.startswith("error: no token")
    forged = ravenctl(thread_stack, "--token", "not-a-jwt", "runs", "get", "r1", auth=False)
    assert forged.exit_code == 2 and forged.stderr.startswith("error: UNAUTHENTICATED: invalid token")


def test_sync_facade_blocks_and_iterates(thread_stack: FakeStack) -> None:
    """SyncRavenClient from plain sync code, against servers on another thread's loop."""
    from common.client import SyncRavenClient

    run = add_run(thread_stack)
    thread_stack.runs.events[run.name] = scripted_events(run, iterations=2)
    addrs = (thread_stack.training_run_addr, thread_stack.trained_model_addr)
    with SyncRavenClient(*addrs, token=token()) as client:
        assert client.get_run("trainingRuns/r1").display_name == "run r1"
        assert [r.event.sequence for r in client.watch("trainingRuns/r1")] == [1, 2, 3, 4, 5]
