"""``common.leadership`` on a real nats-server: one holder of a lease at a time across replicas, a quick
hand-over when the holder lets go, a hand-over after the TTL when it dies holding the lease, and a holder that
finds its lease taken stands down."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from common.leadership import Leadership, bucket_name
from common.nats_streams import StreamNames, connect
from common.tasks import cancel_and_wait

pytestmark = pytest.mark.timeout(60)
TTL = 1.5


class Replica:
    """One process's side of the lease: its own NATS connection, a record of its gains and losses."""

    def __init__(self, names: StreamNames, holder: str) -> None:
        self.names, self.holder = names, holder
        self.events: list[str] = []

    async def open(self, nats_url: str) -> Replica:
        self.nc = await connect(nats_url, f"test-{self.holder}")

        async def gain() -> None:
            self.events.append("gain")

        async def loss() -> None:
            self.events.append("loss")

        js = self.nc.jetstream()
        self.lease = Leadership(js, self.names, "test-lease", self.holder, gain, loss, ttl=TTL)
        await self.lease.start()
        return self

    async def crash(self) -> None:
        """Dies holding the lease: no loss callback, the key is left to expire."""
        await cancel_and_wait(self.lease._task)
        await self.nc.close()

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.lease.stop()
            await self.nc.close()


@contextlib.asynccontextmanager
async def replicas(nats_url: str, unique: str, *holders: str) -> AsyncIterator[list[Replica]]:
    names = StreamNames(jobs=f"LJ_{unique}", events=f"LE_{unique}", prefix=f"ld{unique}")
    opened: list[Replica] = []
    try:
        for holder in holders:
            opened.append(await Replica(names, holder).open(nats_url))
        yield opened
    finally:
        for replica in opened:
            await replica.close()
        nc = await connect(nats_url, "test-cleanup")
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_key_value(bucket_name(names))
        await nc.close()


async def wait_for_one_active(group: list[Replica], within: float) -> Replica:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        active = [r for r in group if r.lease.active]
        assert len(active) <= 1, f"{[r.holder for r in active]} active at once"
        if active:
            return active[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no replica took the lease within {within} s")


async def test_one_replica_holds_the_lease_and_hands_it_over_when_it_lets_go(
    nats_url: str, unique: str
) -> None:
    async with replicas(nats_url, unique, "a", "b", "c") as group:
        first = group[0]
        assert first.lease.active and first.events == ["gain"]  # the first one starts active, at once
        for _ in range(round(TTL * 2 / 0.05)):  # renewals keep it; nobody else becomes active
            assert [r.holder for r in group if r.lease.active] == ["a"]
            await asyncio.sleep(0.05)
        await first.lease.stop()
        assert first.events == ["gain", "loss"]
        started = time.monotonic()
        second = await wait_for_one_active(group[1:], TTL)  # a let-go lease is free at once: one try away
        assert time.monotonic() - started <= TTL / 3 + 0.5
        assert second.events == ["gain"]


async def test_a_replica_that_dies_holding_the_lease_is_replaced_after_the_ttl(
    nats_url: str, unique: str
) -> None:
    async with replicas(nats_url, unique, "a", "b") as group:
        first, second = group
        assert first.lease.active
        await first.crash()
        started = time.monotonic()
        await wait_for_one_active([second], TTL * 3)
        waited = time.monotonic() - started
        assert TTL * 0.5 <= waited <= TTL + TTL / 3 + 1.0, waited  # the key had to expire first


async def test_a_restarted_holder_takes_its_own_lease_back_at_once(nats_url: str, unique: str) -> None:
    async with replicas(nats_url, unique, "pod-0:50051:1", "pod-1:50051:1") as group:
        first, other = group
        await first.crash()
        started = time.monotonic()
        again = await Replica(first.names, first.holder).open(nats_url)  # same host, port and pid (PID 1)
        group.append(again)
        assert again.lease.active and time.monotonic() - started < TTL / 2
        assert not other.lease.active


async def test_a_holder_whose_lease_was_taken_stands_down(nats_url: str, unique: str) -> None:
    async with replicas(nats_url, unique, "a") as group:
        first = group[0]
        kv = await first.nc.jetstream().key_value(bucket_name(first.names))
        await kv.put("test-lease", b"someone else")  # e.g. after a partition longer than the TTL
        deadline = time.monotonic() + TTL
        while first.lease.active and time.monotonic() < deadline:  # noqa: ASYNC110 (polls another task)
            await asyncio.sleep(0.05)
        assert not first.lease.active and first.events == ["gain", "loss"]


async def test_a_changed_ttl_setting_takes_over_the_existing_bucket(nats_url: str, unique: str) -> None:
    async with replicas(nats_url, unique, "a") as group:
        names = group[0].names
        await group[0].close()
        nc = await connect(nats_url, "test-other-ttl")

        async def nothing() -> None:
            pass

        lease = Leadership(nc.jetstream(), names, "test-lease", "b", nothing, nothing, ttl=TTL / 2)
        await lease.start()  # the bucket exists with TTL: updated to the new one, not an error
        try:
            assert lease.active
            info = await nc.jetstream().stream_info(f"KV_{bucket_name(names)}")
            assert info.config.max_age == pytest.approx(TTL / 2)
        finally:
            await lease.stop()
            await nc.close()
