"""End to end: the real stack driven by ravenctl's JSON.

The stack is nats-server, both services on SQLite and one CPU worker. A real, tiny MMDetection training runs
on CPU; every step goes through the public gRPC API. The worker holds only a worker token: its processes'
environments are checked for the signing key while it trains.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.auth import inspect_worker_token
from scripts.stack import ROOT, Stack
from tests.fixtures.synthetic_coco import make_dataset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

RAVENCTL = str(Path(sys.executable).parent / "ravenctl")
TINY = [
    "--template",
    "rtmdet_tiny",
    "--batch-size",
    "4",
    "--image-size",
    "128",
    "--val-interval",
    "1",
    "--seed",
    "1",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("e2e")
    make_dataset(data_dir / "datasets" / "waste", n_images=12, size=128, seed=5)
    broken = make_dataset(data_dir / "datasets" / "broken", n_images=6, size=128, seed=6)
    annotations = json.loads((broken / "annotations.json").read_text())
    annotations["annotations"][0]["bbox"] = [100, 100, 90, 90]  # outside the 128 px image
    annotations["annotations"][0].pop("segmentation", None)
    (broken / "annotations.json").write_text(json.dumps(annotations))
    with Stack(data_dir, extra_env={"RAVEN_LEASE_SECONDS": "30", "RAVEN_HEARTBEAT_SECONDS": "2"}) as running:
        yield running


def ravenctl(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RAVENCTL, "--output", "json", "--timeout", "30", *args],
        env=stack.env(),
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=600,
    )


def ok(stack: Stack, *args: str) -> dict:
    result = ravenctl(stack, *args)
    assert result.returncode == 0, f"ravenctl {args}: {result.stderr}"
    return json.loads(result.stdout)


def watch(stack: Stack, name: str) -> tuple[int, list[dict]]:
    result = ravenctl(stack, "runs", "watch", name)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.returncode, lines


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    tree = [root]
    for pid in tree:
        tree += [child for child, parent in parents.items() if parent == pid]
    return tree


def assert_no_signing_key_in_worker_processes(stack: Stack) -> None:
    """No worker process can mint a token: no key in its environment or command line, only a worker token."""
    tree = process_tree(stack.processes["trainer_worker"].pid)
    assert len(tree) >= 2, "the training child process was expected to be running"
    for pid in tree:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # a short-lived helper that already exited
        names = {item.split(b"=", 1)[0].decode() for item in environ.split(b"\0") if item}
        assert not names & {"RAVEN_JWT_SECRET", "RAVEN_JWT_PRIVATE_KEY"}, (pid, sorted(names))
        assert stack.jwt_secret.encode() not in environ + cmdline, pid
    worker_env = Path(f"/proc/{tree[0]}/environ").read_bytes().split(b"\0")
    prefix = b"RAVEN_WORKER_TOKEN_FILE="
    token_file = next(i.removeprefix(prefix).decode() for i in worker_env if i.startswith(prefix))
    assert inspect_worker_token(Path(token_file).read_text()).subject == "embedded-workers"


def test_train_publish_finetune_and_lineage(stack: Stack) -> None:
    run = ok(stack, "runs", "create", "--name", "e2e-first", "--dataset", "waste", "--epochs", "2", *TINY)
    assert run["state"] == "PENDING"
    code, events = watch(stack, run["name"])
    assert code == 0, events[-3:]
    envelope = ("run_id", "attempt", "time", "sequence")
    kinds = {next(k for k in e["event"] if k not in envelope) for e in events}
    assert {"started", "progress", "state_changed"} <= kinds
    finished = ok(stack, "runs", "get", run["name"])
    assert finished["state"] == "SUCCEEDED"
    model_name = finished["trained_model"]
    model = ok(stack, "models", "get", model_name)
    val = model["evaluation"]["val"]
    assert {"bbox_map", "bbox_map_50", "bbox_map_75"} <= set(val)
    assert model["checkpoint"]["sha256"] and model["dataset_snapshot_sha256"]
    assert model["training_run"] == run["name"]
    # A plain dataset reference trains on its implicit dataset version, which the model's lineage names.
    assert finished["dataset"] == "waste" and finished["dataset_version"].startswith("datasets/")
    assert model["dataset"] == finished["dataset_version"]
    assert model["split_sha256"] == finished["split_sha256"] != ""

    published = ok(stack, "models", "publish", model_name)
    assert published["published"] is True

    child = ok(
        stack,
        "runs",
        "create",
        "--name",
        "e2e-finetune",
        "--dataset",
        "waste",
        "--epochs",
        "1",
        "--base-model",
        model_name,
        *TINY,
    )
    code, _ = watch(stack, child["name"])
    assert code == 0
    child_model = ok(stack, "runs", "get", child["name"])["trained_model"]
    lineage = ok(stack, "models", "lineage", child_model)
    assert [a["trained_model"] for a in lineage["ancestors"]] == [model_name]
    assert ok(stack, "runs", "get", child["name"])["dataset_version"] == finished["dataset_version"]  # reused
    assert lineage["ancestors"][0]["dataset"] == finished["dataset_version"]
    assert ok(stack, "models", "get", child_model)["base_model"] == model_name


def test_cancel_a_running_run(stack: Stack) -> None:
    # a long run, and it must stay one: no small-dataset early stopping default
    run = ok(stack, "runs", "create", "--name", "e2e-cancel", "--dataset", "waste", "--epochs", "200",
             "--early-stopping-patience", "0", *TINY)  # fmt: skip
    deadline = time.monotonic() + 300
    while True:
        current = ok(stack, "runs", "get", run["name"])
        if current["state"] == "RUNNING" and int(current.get("progress", {}).get("iter", 0)) > 0:
            break
        assert time.monotonic() < deadline, current
        time.sleep(1)
    assert_no_signing_key_in_worker_processes(stack)  # the worker and its training child, mid-training
    ok(stack, "runs", "cancel", run["name"])
    code, events = watch(stack, run["name"])
    assert code == 1
    assert ok(stack, "runs", "get", run["name"])["state"] == "CANCELLED"
    assert events[-1]["event"]["state_changed"]["to_state"] == "CANCELLED"


def test_invalid_dataset_fails_with_its_reason(stack: Stack) -> None:
    run = ok(stack, "runs", "create", "--name", "e2e-broken", "--dataset", "broken", "--epochs", "1", *TINY)
    result = ravenctl(stack, "runs", "watch", run["name"])
    assert result.returncode == 1
    assert "INVALID_DATASET" in result.stderr and "outside" in result.stderr
    failed = ok(stack, "runs", "get", run["name"])
    assert failed["state"] == "FAILED"
    assert failed["failure"]["kind"] == "INVALID_DATASET"


def test_the_idle_worker_and_the_templates_are_discoverable(stack: Stack) -> None:
    """The real worker announces itself (HeartbeatWorker) before it ever claims; templates match Create."""
    deadline = time.monotonic() + 60
    while True:
        listed = ok(stack, "workers", "list")
        workers = [w for w in listed["workers"] if w["info"]["device_kind"] == "cpu"]
        if workers:
            break
        assert time.monotonic() < deadline, listed
        time.sleep(1)
    assert workers[0]["info"]["slots"] >= 1 and workers[0]["last_seen_time"]
    assert {q["capability"] for q in listed["queue"]} == {"gpu", "any"}
    templates = ok(stack, "templates", "list")["model_templates"]
    tiny = ok(stack, "templates", "get", "rtmdet_tiny")
    assert tiny in templates and not tiny["gpu_recommended"]
    assert tiny["default_hyperparameters"]["frozen_stages"] == -1  # random init: nothing to freeze
