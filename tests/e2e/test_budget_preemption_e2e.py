"""Issue 17 end to end (real stack: nats-server, both services on SQLite, CPU workers, real RTMDet-tiny
training, driven by ravenctl's JSON):

- early stopping: a run on the demo dataset (``make demo``'s) with ``early_stopping {patience, min_delta
  0.001}`` stops before its epochs once val bbox mAP stops gaining, ends SUCCEEDED with its best checkpoint
  registered, and records ``stopped_early`` at that epoch;
- ``max_runtime``: a run asked for far more epochs than its budget allows ends SUCCEEDED with a registered
  model, "stopped by time budget", within the budget plus a grace for checkpoint, evaluation and registration;
- preemption: SIGTERM to the worker mid-epoch checkpoints the current iteration, releases the lease as
  preempted (a run with max_attempts 1 still succeeds: not a failed attempt), another worker resumes from
  that checkpoint, and no epoch is trained twice beyond the interrupted one.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from scripts.stack import Stack
from tests.e2e.test_stack_e2e import ok, watch
from tests.fixtures.synthetic_coco import make_dataset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
BUDGET_SECONDS = 60  # issue 17's "done when": max_runtime 60 s
# After the budget: the training child checkpoints, evaluates the best checkpoint on val and test (with the
# test split's analysis), uploads, and trained_model registers; on 2 shared CPU cores that takes ~10-30 s.
GRACE_SECONDS = 60
# train() itself stops at the first iteration past the budget; it also spends time the hook's clock does not
# see (runner set-up before before_train) and a validation that straddles the deadline. Measured: 64.3 s
# of train() for the 60 s budget (2 shared CPU cores), the run RUNNING 79.5 s in all.
TRAIN_SLACK_SECONDS = 10
TINY = ["--template", "rtmdet_tiny", "--val-interval", "1", "--seed", "1"]
# Early stopping on the demo data: the template's defaults (batch 4, 160 px, lr 0.004, cosine over the second
# half) for up to PLATEAU_EPOCHS, validated every epoch; a realistic min_delta, not one no gain can reach.
PLATEAU_EPOCHS, PATIENCE, MIN_DELTA = 60, 5, 0.001


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("budget")
    make_dataset(data_dir / "datasets" / "waste", n_images=12, size=128, seed=5)
    make_dataset(data_dir / "datasets" / "longer", n_images=40, size=256, seed=6)
    make_dataset(data_dir / "datasets" / "waste-demo", n_images=60, size=256, seed=3)  # scripts/demo.py's
    env = {"RAVEN_LEASE_SECONDS": "30", "RAVEN_HEARTBEAT_SECONDS": "2", "RAVEN_PROGRESS_EVERY_ITERS": "1",
           "RAVEN_PROGRESS_EVERY_SECONDS": "0", "RAVEN_PREEMPTION_GRACE_SECONDS": "30"}  # fmt: skip
    with Stack(data_dir, extra_env=env) as running:
        yield running


def test_max_runtime_ends_a_long_run_succeeded_with_a_registered_model(stack: Stack) -> None:
    budget = f"{BUDGET_SECONDS}s"
    # early stopping off: on this small dataset the template's default would end the run at a plateau
    run = ok(stack, "runs", "create", "--name", "budget", "--dataset", "waste", "--epochs", "300",
             "--batch-size", "4", "--image-size", "128", "--max-runtime", budget,
             "--early-stopping-patience", "0", *TINY)  # fmt: skip
    code, events = watch(stack, run["name"])
    assert code == 0, events[-3:]
    done = ok(stack, "runs", "get", run["name"])
    assert done["state"] == "SUCCEEDED" and done["trained_model"], done
    assert done["stopped_by_time_budget"] is True and not done.get("stopped_early")
    started, ended = (_seconds(done[k]) for k in ("start_time", "end_time"))
    assert ended - started <= BUDGET_SECONDS + GRACE_SECONDS, (ended - started, done["transitions"])
    used = float(done["runtime_used"].rstrip("s"))  # RUNNING time over its attempts: within budget + grace
    assert BUDGET_SECONDS - 5 <= used <= BUDGET_SECONDS + GRACE_SECONDS, used
    model = ok(stack, "models", "get", done["trained_model"])
    assert model["training_run"] == run["name"] and model["checkpoint"]["sha256"]
    # the training wall clock (train() in the child) ends at the budget, give or take the slack above
    assert 0 < float(model["training_seconds"]) <= BUDGET_SECONDS + TRAIN_SLACK_SECONDS, model
    epochs_seen = max(int(e["event"]["progress"]["progress"].get("epoch", 0))
                      for e in events if "progress" in e["event"])  # fmt: skip
    print(f"budget {BUDGET_SECONDS} s: start to end {ended - started:.1f} s, runtime_used {used:.1f} s, "
          f"training {model['training_seconds']} s, epochs reached {epochs_seen} of 300")  # fmt: skip
    assert epochs_seen < 300


def test_early_stopping_ends_a_run_on_the_demo_data_when_val_map_plateaus(stack: Stack) -> None:
    started = time.monotonic()
    stopping = ["--early-stopping-patience", str(PATIENCE), "--early-stopping-min-delta", str(MIN_DELTA)]
    run = ok(stack, "runs", "create", "--name", "plateau", "--dataset", "waste-demo", "--template",
             "rtmdet_tiny", "--epochs", str(PLATEAU_EPOCHS), "--val-interval", "1", "--seed", "7",
             *stopping)  # fmt: skip
    code, events = watch(stack, run["name"])
    assert code == 0, events[-3:]
    done = ok(stack, "runs", "get", run["name"])
    model = ok(stack, "models", "get", done["trained_model"]) if done.get("trained_model") else {}
    history = [(int(h["epoch"]), float(h.get("bbox_map", 0.0))) for h in model["evaluation"]["history"]]
    print(
        f"plateau run: {time.monotonic() - started:.0f} s, training {model.get('training_seconds')} s, "
        f"stopped at epoch {done.get('stopped_epoch')}; val bbox mAP by epoch: {history}"
    )
    assert done["state"] == "SUCCEEDED" and done["trained_model"], done
    assert done["hyperparameters"]["early_stopping"] == {"patience": PATIENCE, "min_delta": MIN_DELTA}
    assert done.get("stopped_early") is True, history
    stopped = int(done["stopped_epoch"])
    assert stopped < PLATEAU_EPOCHS and [e for e, _ in history][-1] == stopped, (stopped, history)
    # The plateau, from the model's own per-epoch history: validations before mAP first rose above 0 count
    # for nothing; from there, the stop came at the first validation that made PATIENCE in a row without a
    # gain of MIN_DELTA on the best so far.
    scores = [m for _, m in history]
    best, waited = -1.0, []
    for score in scores[next(i for i, m in enumerate(scores) if m > 0) :]:
        gained = score >= best + MIN_DELTA
        best = score if gained else best
        waited.append(0 if gained else waited[-1] + 1)
    assert waited[-1] == PATIENCE and PATIENCE not in waited[:-1], (waited, history)
    top = max(scores)  # the registered model is the best checkpoint
    assert int(model["evaluation"]["best_epoch"]) == history[scores.index(top)][0], history


def test_sigterm_mid_epoch_preempts_and_another_worker_resumes(stack: Stack) -> None:
    run = ok(stack, "runs", "create", "--name", "preempted", "--dataset", "longer", "--epochs", "3",
             "--batch-size", "2", "--image-size", "256", "--max-attempts", "1", *TINY)  # fmt: skip
    per_epoch = 0
    deadline = time.monotonic() + 600
    while True:  # one whole epoch trained, and then some of the next one
        progress = ok(stack, "runs", "get", run["name"]).get("progress", {})
        per_epoch = int(progress.get("max_iters", 0)) // max(int(progress.get("max_epochs", 1)), 1)
        step = int(progress.get("iter", 0))
        if per_epoch and step > per_epoch and step % per_epoch not in (0, per_epoch - 1):
            break
        assert time.monotonic() < deadline, progress
        time.sleep(0.3)
    stack.kill("trainer_worker", signal.SIGTERM, timeout=120)
    assert stack.processes["trainer_worker"].returncode == 0
    stack.add_worker("resumer")
    code, events = watch(stack, run["name"])
    assert code == 0, events[-3:]

    done = ok(stack, "runs", "get", run["name"])
    assert done["state"] == "SUCCEEDED" and done["trained_model"] and int(done["attempt"]) == 2
    first, second = done["attempts"]
    assert first.get("preempted") is True and "preempted: released by demo-worker-1" in first["end_reason"]
    assert not second.get("preempted")
    starts = [e["event"] for e in events if "started" in e["event"]]
    assert [int(s["attempt"]) for s in starts] == [1, 2]
    assert starts[1]["started"]["worker_id"] == "resumer"
    assert "/checkpoints/attempt-1/iter_" in starts[1]["started"]["resumed_from"]  # the SIGTERM checkpoint

    def epochs(attempt: int) -> list[int]:
        return [int(e["event"]["progress"]["progress"].get("epoch", 0)) for e in events
                if "progress" in e["event"] and int(e["event"].get("attempt", 0)) == attempt]  # fmt: skip

    interrupted = max(epochs(1))  # 0-based index of the epoch the SIGTERM interrupted
    assert interrupted >= 1
    # Attempt 2 redoes the interrupted epoch (its checkpoint was mid-epoch) and none before it.
    assert min(epochs(2)) == interrupted, (epochs(1), epochs(2))


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
