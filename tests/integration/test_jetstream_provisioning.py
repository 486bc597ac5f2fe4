from common.nats_streams import (
    StreamNames,
    connect,
    ensure_events_consumer,
    ensure_streams,
    ensure_worker_consumer,
)


async def test_streams_and_consumers_are_provisioned_idempotently(nats_url: str, unique: str) -> None:
    names = StreamNames(jobs=f"JOBS_{unique}", events=f"EVENTS_{unique}", prefix=f"t{unique}")
    nc = await connect(nats_url, "test")
    try:
        js = nc.jetstream()
        await ensure_streams(js, names)
        await ensure_streams(js, names)
        jobs = await js.stream_info(names.jobs)
        events = await js.stream_info(names.events)
        assert str(jobs.config.retention) in ("workqueue", "RetentionPolicy.WORK_QUEUE")
        assert str(events.config.retention) in ("limits", "RetentionPolicy.LIMITS")
        assert str(jobs.config.storage) in ("file", "StorageType.FILE")
        await ensure_worker_consumer(js, names)
        await ensure_worker_consumer(js, names)
        await ensure_events_consumer(js, "tracker", names)

        ack = await js.publish(names.jobs_subject, b"job", headers={"Nats-Msg-Id": "run-1:1"})
        dup = await js.publish(names.jobs_subject, b"job", headers={"Nats-Msg-Id": "run-1:1"})
        assert dup.duplicate and not ack.duplicate
        await js.publish(names.run_events_subject("run-1"), b"event")
        sub = await js.pull_subscribe(names.jobs_subject, durable="trainer-workers", stream=names.jobs)
        msgs = await sub.fetch(1, timeout=5)
        assert msgs[0].data == b"job"
        await msgs[0].ack_sync()
        assert (await js.stream_info(names.jobs)).state.messages == 0  # work queue: acked = removed
        assert (await js.stream_info(names.events)).state.messages == 1
    finally:
        for name in (names.jobs, names.events):
            await js.delete_stream(name)
        await nc.close()
