"""RunEvent publisher on real JetStream: deduplicated terminal events, throttled progress, batched logs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.js import JetStreamContext

from common.nats_streams import StreamNames, connect, ensure_streams
from common.proto.raven.v1 import events_pb2, types_pb2
from services.trainer_worker.adapters.events import RunEventPublisher
from services.trainer_worker.domain.job import LogBatch


@pytest.fixture
async def js_names(nats_url: str, unique: str) -> AsyncIterator[tuple[JetStreamContext, StreamNames]]:
    names = StreamNames(jobs=f"JOBS_{unique}", events=f"EVENTS_{unique}", prefix=f"e{unique}")
    nc = await connect(nats_url, "test-events")
    js = nc.jetstream()
    await ensure_streams(js, names)
    yield js, names
    for stream in (names.jobs, names.events):
        await js.delete_stream(stream)
    await nc.close()


async def stored(js: JetStreamContext, names: StreamNames) -> list[events_pb2.RunEvent]:
    info = await js.stream_info(names.events)
    events = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        event = events_pb2.RunEvent()
        event.ParseFromString((await js.get_msg(names.events, seq)).data)
        events.append(event)
    return events


async def test_terminal_event_is_stored_once_per_attempt(
    js_names: tuple[JetStreamContext, StreamNames],
) -> None:
    js, names = js_names
    first = RunEventPublisher(js, names, "r1", 1)
    await first.cancelled("user asked", "runs/r1/checkpoints/attempt-1/epoch_2.pth")
    await first.cancelled("user asked", "runs/r1/checkpoints/attempt-1/epoch_2.pth")  # a retried publish
    await RunEventPublisher(js, names, "r1", 2).cancelled("user asked")  # another attempt is another event
    events = await stored(js, names)
    assert [(e.attempt, e.WhichOneof("payload")) for e in events] == [(1, "cancelled"), (2, "cancelled")]
    assert events[0].cancelled.last_checkpoint.endswith("epoch_2.pth") and events[0].run_id == "r1"


async def test_progress_is_throttled_and_logs_are_batched(
    js_names: tuple[JetStreamContext, StreamNames],
) -> None:
    js, names = js_names
    now = [0.0]
    publisher = RunEventPublisher(
        js, names, "r2", 1, progress_every_iters=10, progress_every_seconds=60.0,
        log_batch=LogBatch(max_lines=4, max_seconds=60.0), clock=lambda: now[0],
    )  # fmt: skip
    sent = [await publisher.progress(types_pb2.ProgressSnapshot(iter=i)) for i in range(1, 26)]
    assert sent.count(True) == 3  # iterations 1, 11, 21
    assert await publisher.progress(types_pb2.ProgressSnapshot(iter=22, epoch=1), force=True)  # epoch end
    for n in range(6):
        await publisher.log(f"line {n}")
    await publisher.failed(
        types_pb2.Failure(kind=types_pb2.INTERNAL_ERROR, message="boom")
    )  # flushes logs first

    events = await stored(js, names)
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds == ["progress"] * 4 + ["log", "log", "failed"], [str(e) for e in events[4:]]
    assert [e.progress.progress.iter for e in events[:4]] == [1, 11, 21, 22]
    assert all(e.progress.progress.HasField("update_time") for e in events[:4])
    assert [list(e.log.lines) for e in events[4:6]] == [[f"line {n}" for n in range(4)], ["line 4", "line 5"]]
    assert all(e.run_id == "r2" and e.attempt == 1 for e in events)
