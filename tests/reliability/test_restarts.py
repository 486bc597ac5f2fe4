"""Service and broker restarts mid-run: training_run (SIGKILL), nats-server (SIGKILL, back on the same port
and store directory) and trained_model (SIGTERM, while the run evaluates: the completion reaches a fresh
registrar).

No run is lost; watchers that reconnect with their resume token (RavenClient.watch, and raw watchers without
its duplicate filter) see every event exactly once, without gaps against a full replay from token 0, and the
terminal event. ``RAVEN_RELIABILITY_RUNS`` runs (default 1).
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from common.proto.raven.v1 import types_pb2
from scripts.stack import Stack
from tests.reliability import harness
from tests.reliability.harness import kind

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

RUNS = harness.runs_per_scenario(1)


async def _client_watch(client, name: str, out: list) -> None:  # type: ignore[no-untyped-def]
    async for response in client.watch(name):
        out.append(response)


@pytest.mark.parametrize("index", range(RUNS))
async def test_restarts_lose_no_run_and_no_event(stack: Stack, index: int) -> None:
    started = time.monotonic()
    restarts: list[dict[str, object]] = []
    async with harness.client_for(stack, max_attempts=60) as client:
        run = await harness.create(client, "restarts", epochs=3)
        watchers = [harness.client_for(stack, max_attempts=60) for _ in range(3)]
        seen: list[list] = [[], [], []]
        tasks = [
            asyncio.create_task(_client_watch(watchers[0], run.name, seen[0])),
            asyncio.create_task(harness.raw_watch(watchers[1], run.name, seen[1])),
            asyncio.create_task(harness.raw_watch(watchers[2], run.name, seen[2])),
        ]
        plan = ["training_run", "nats", "trained_model"]

        async def restart(name: str, sig: int) -> None:
            t0 = time.monotonic()
            await asyncio.to_thread(stack.restart, name, sig)
            restarts.append(
                {
                    "process": name,
                    "signal": signal.Signals(sig).name,
                    "seconds_down": round(time.monotonic() - t0, 1),
                    "at_event": len(seen[0]),
                }
            )

        # Drive the restarts from the first watcher's view of the run (it reconnects through all of them).
        deadline, cursor = time.monotonic() + 900, 0
        while plan and time.monotonic() < deadline and not tasks[0].done():
            await asyncio.sleep(0.1)
            fresh, cursor = seen[0][cursor:], len(seen[0])
            for response in fresh:
                snapshot = response.event.progress.progress if kind(response) == "progress" else None
                training = snapshot is not None and snapshot.phase == types_pb2.TRAINING
                evaluating = kind(response) == "phase_changed" and (
                    response.event.phase_changed.phase == types_pb2.EVALUATING
                )
                if plan and plan[0] == "training_run" and training:
                    await restart(plan.pop(0), signal.SIGKILL)
                elif plan and plan[0] == "nats" and training and snapshot.epoch >= 2:  # type: ignore[union-attr]
                    await restart(plan.pop(0), signal.SIGKILL)
                elif plan and plan[0] == "trained_model" and evaluating:
                    await restart(plan.pop(0), signal.SIGTERM)
        reconnects = await asyncio.wait_for(asyncio.gather(*tasks), 900)
        for watcher in watchers:
            await watcher.close()
        final = await client.get_run(run.name)
        models = await harness.models_of(client, run.name)
        replayed = await harness.replay(client, run.name)
    expected = harness.sequences(replayed)
    harness.record(
        "restarts",
        {
            "state": types_pb2.RunState.Name(final.state),
            "attempts": final.attempt,
            "restarts": restarts,
            "events": len(expected),
            "watcher_events": [len(s) for s in seen],
            "raw_reconnects": reconnects[1:],
            "models": len(models),
            "duration_s": round(time.monotonic() - started, 1),
        },
    )

    assert not plan, f"restarts not done: {plan} (run ended first?) {restarts}"
    assert final.state == types_pb2.SUCCEEDED, (final.failure, [t.reason for t in final.transitions])
    assert len(models) == 1 and final.trained_model == models[0].name
    assert expected == sorted(set(expected)) and expected, "replay from 0 out of order or duplicated"
    for watched in seen:
        assert harness.sequences(watched) == expected  # exactly once, no gap, same order
        assert watched[-1].event.state_changed.to_state == types_pb2.SUCCEEDED
    assert replayed[-1].event.state_changed.to_state == types_pb2.SUCCEEDED
