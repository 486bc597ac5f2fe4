"""Closing training_run with watch streams open (idle, cancelled by their client, or mid-replay) returns
within its bound and ends every stream; a stuck shutdown step is abandoned after the bound and named."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from structlog.testing import capture_logs

from common.proto.raven.v1 import training_run_pb2 as pb
from tests.integration.training_run.conftest import Harness

pytestmark = pytest.mark.timeout(60)
GRACE = 5.0


async def _ended(call: Any) -> grpc.aio.AioRpcError | None:
    """How the stream ended: its error, or None when it ended OK."""
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as exc:
        return exc
    return None


async def test_close_ends_open_watch_streams_within_the_bound(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    run = await h.create()
    watch_one = h.stub.WatchTrainingRun(pb.WatchTrainingRunRequest(name=run.name), metadata=h.user)
    dashboards = [h.stub.WatchTrainingRuns(pb.WatchTrainingRunsRequest(), metadata=h.user) for _ in range(2)]
    cancelled = h.stub.WatchTrainingRuns(pb.WatchTrainingRunsRequest(), metadata=h.user)
    endings = [asyncio.create_task(_ended(call)) for call in (watch_one, *dashboards)]
    for _ in range(100):  # every stream is open on the server
        if h.app.feeds.watchers == 1 and h.app.changes.watchers == 3:
            break
        await asyncio.sleep(0.05)
    assert h.app.server.open_streams() == {
        "/raven.v1.TrainingRunService/WatchTrainingRun": 1,
        "/raven.v1.TrainingRunService/WatchTrainingRuns": 3,
    }
    cancelled.cancel()  # the server may not have seen it yet when the shutdown begins

    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(h.app.close(grace=GRACE, step_timeout=2), 2 * GRACE)
    # Streams never end by themselves: before, the server waited out its whole grace for them.
    assert loop.time() - started < GRACE / 2
    errors = await asyncio.wait_for(asyncio.gather(*endings), 5)
    for error in errors:
        assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE, error
        assert "shutting down" in (error.details() or "")
    assert h.app.server.open_streams() == {}
    assert h.app.feeds.watchers == 0 and h.app.changes.watchers == 0
    assert h.app.nc.is_closed


async def test_a_stuck_shutdown_step_is_abandoned_after_the_bound_and_named(
    sqlite_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = sqlite_harness
    never = asyncio.Event()

    async def stuck_close() -> None:
        await never.wait()

    monkeypatch.setattr(h.app.trained_models, "close", stuck_close)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with capture_logs() as logs:
        await asyncio.wait_for(h.app.close(step_timeout=0.5), 10)
    assert loop.time() - started < 5
    (line,) = [entry for entry in logs if entry["event"] == "shutdown step timed out; abandoned"]
    assert line["service"] == "training_run" and line["step"] == "trained_model client"
    assert "stuck_close" in line["waiting_for"]
    assert h.app.nc.is_closed  # the steps after it still ran
