"""Worker death: SIGKILL the worker holding a run (with its training child) at a chosen moment; the other
worker takes the run over after the lease expires and resumes from the last checkpoint.

Kill points, picked from the run's live events: mid-epoch (after training_run recorded a checkpoint),
during the dataset preparation of the resumed attempt (after a first mid-epoch kill), during the final
evaluation, during the upload. ``RAVEN_RELIABILITY_RUNS`` runs (default 2: mid-epoch and evaluation); the
kill points cycle.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from common.proto.raven.v1 import types_pb2
from scripts.stack import Stack
from tests.reliability import harness
from tests.reliability.harness import attempts_of, kind

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

KILL_POINTS = ("mid_epoch", "evaluating", "preparing", "uploading")
RUNS = harness.runs_per_scenario(2)
EPOCHS = {"mid_epoch": 3, "preparing": 3, "evaluating": 2, "uploading": 2}  # mid-epoch needs a later epoch


async def _kill_holder(stack: Stack, worker_id: str) -> str:
    name = harness.worker_process(stack, worker_id)
    await asyncio.to_thread(stack.kill, name)
    await asyncio.to_thread(stack.start_process, name)  # back as a fresh, idle worker
    return name


@pytest.mark.parametrize("index", range(RUNS))
async def test_killed_worker_is_replaced_and_the_run_resumes(stack: Stack, index: int) -> None:
    point = KILL_POINTS[index % len(KILL_POINTS)]
    rng = random.Random(index)
    started = time.monotonic()
    async with harness.client_for(stack) as client:
        run = await harness.create(client, f"death-{point}", epochs=EPOCHS[point])
        rid = harness.run_id(run.name)
        events = []
        holders: dict[int, str] = {}
        kills: list[dict[str, object]] = []
        planned = ["mid_epoch", "preparing"] if point == "preparing" else [point]
        skip_iters = rng.randint(0, 2)  # mid-epoch: a random later iteration once a checkpoint is recorded
        async for response in client.watch(run.name):
            events.append(response)
            event = response.event
            if kind(response) == "started":
                holders[event.attempt] = event.started.worker_id
            if not planned or event.attempt != len(kills) + 1:
                continue
            target = planned[0]
            hit = False
            if target == "mid_epoch" and kind(response) == "progress":
                snapshot = event.progress.progress
                if snapshot.phase == types_pb2.TRAINING and harness.stored_row(
                    stack, "training_runs", "resume_checkpoint", rid
                ):
                    hit = skip_iters <= 0 and snapshot.iter < snapshot.max_iters
                    skip_iters -= 1
            elif kind(response) == "phase_changed":
                hit = {
                    "preparing": types_pb2.PREPARING_DATASET,
                    "evaluating": types_pb2.EVALUATING,
                    "uploading": types_pb2.UPLOADING,
                }.get(target) == event.phase_changed.phase
            if hit:
                planned.pop(0)
                process = await _kill_holder(stack, holders[event.attempt])
                stored = await client.get_run(run.name)
                kills.append(
                    {
                        "point": target,
                        "attempt": event.attempt,
                        "process": process,
                        "phase_after_kill": types_pb2.RunPhase.Name(
                            stored.progress.phase or stored.attempt * 0
                        ),
                        "iter": stored.progress.iter,
                    }
                )

        final = await client.get_run(run.name)
        models = await harness.models_of(client, run.name)
        replayed = await harness.replay(client, run.name)
    duration = time.monotonic() - started
    traces = attempts_of(replayed)
    last = traces[final.attempt]
    harness.record(
        "worker_death",
        {
            "point": point,
            "state": types_pb2.RunState.Name(final.state),
            "attempts": final.attempt,
            "kills": kills,
            "models": len(models),
            "duration_s": round(duration, 1),
            "iters_per_attempt": {a: len(set(t.iters)) for a, t in traces.items()},
            "max_iters": last.max_iters or max(t.max_iters for t in traces.values()),
            "resumed_from": last.resumed_from,
        },
    )

    assert final.state == types_pb2.SUCCEEDED, (final.failure, kills)
    assert len(models) == 1 and final.trained_model == models[0].name
    # The history covers the whole run, the killed attempts' epochs included, each epoch once.
    assert [h.epoch for h in models[0].evaluation.history] == list(range(1, EPOCHS[point] + 1))
    assert kills, f"no kill happened at {point}"
    assert harness.sequences(events) == harness.sequences(replayed)  # the live watch saw each event once
    if point != "uploading" or final.attempt > 1:  # an upload kill may land after `completed` was stored
        assert final.attempt == len(kills) + 1, [t.reason for t in final.transitions]
        # Resumed from the last checkpoint: the final attempt trained fewer iterations than a fresh start.
        max_iters = max(t.max_iters for t in traces.values())
        assert last.resumed_from.startswith(f"runs/{rid}/checkpoints/"), last
        assert len(set(last.iters)) < max_iters, last
        assert not last.iters or min(last.iters) > 1, last
        assert final.transitions[-1].to_state == types_pb2.SUCCEEDED
        requeues = [t for t in final.transitions if t.to_state == types_pb2.PENDING and "expired" in t.reason]
        assert len(requeues) == len(kills)


async def test_no_run_is_left_non_terminal(stack: Stack) -> None:
    """After every scenario that ran on the shared stack (this file runs last): nothing is stuck."""
    async with harness.client_for(stack) as client:
        runs = [run async for run in client.iter_runs(page_size=500)]
    stuck = [(r.name, types_pb2.RunState.Name(r.state)) for r in runs if r.state not in harness.TERMINAL]
    harness.record("no_run_left", {"runs": len(runs), "non_terminal": stuck})
    assert runs and not stuck
