"""One active holder at a time, across every replica: a lease on a key of a NATS KV bucket.

A durable consumer whose messages must be applied in stream order (a run's events: ``completed`` before
``model_registered``) cannot be shared by several replicas: JetStream hands each replica its own messages and
they are applied concurrently, out of order. ``Leadership`` gives such a consumer to one replica at a time
(a "single active consumer"): the holder renews the key every third of ``ttl``; the others try to create it
as often. The bucket's ``max_age`` is ``ttl``, so the key of a holder that died without letting go expires
and another replica takes over within ``ttl`` plus one try; one that stops lets go at once.

A holder that cannot renew (NATS unreachable, a stalled loop) stops being active before its key can expire,
so two holders never overlap while their clocks run at the same rate. ``holder`` names the process
(host, port, pid): a process that comes back with the name of the previous holder (a container restarted in
its pod keeps host name and, as PID 1, its pid) takes its own key back at once instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from prometheus_client import Gauge

from common.logging import get_logger
from common.nats_streams import StreamNames
from common.tasks import cancel_and_wait

log = get_logger("leadership")
LEADING = Gauge("raven_leadership_active", "1 while this process holds the lease", ["lease"])
DEFAULT_TTL_SECONDS = 10.0
_RENEW_FAILURES = (nats.errors.Error, nats.js.errors.Error, OSError, TimeoutError)


def holder_name(port: int) -> str:
    """This process among every replica: host name (the pod's), gRPC port, pid. Port 0 (several servers in
    one process, tests) adds a random part: such a holder never takes a lease back after a restart."""
    name = f"{socket.gethostname()}:{port}:{os.getpid()}"
    return name if port else f"{name}:{uuid.uuid4().hex[:8]}"


def bucket_name(names: StreamNames) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{names.prefix}_leases").upper()


class Leadership:
    """Runs ``on_gain`` when this process gets lease ``name``, ``on_loss`` when it loses it or lets it go."""

    def __init__(
        self,
        js: JetStreamContext,
        names: StreamNames,
        name: str,
        holder: str,
        on_gain: Callable[[], Awaitable[None]],
        on_loss: Callable[[], Awaitable[None]],
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        replicas: int = 1,
    ) -> None:
        self._js = js
        self._bucket = bucket_name(names)
        self._key = re.sub(r"[^A-Za-z0-9_=.-]", "_", name)
        self._holder = holder.encode()
        self._on_gain, self._on_loss = on_gain, on_loss
        self._ttl = ttl
        self._replicas = replicas
        self._kv: KeyValue | None = None
        self._revision: int | None = None  # of our key while we hold it
        self._renewed = 0.0  # monotonic time of the last successful create/renew
        self._task: asyncio.Task[None] | None = None
        self.name = name

    @property
    def active(self) -> bool:
        return self._revision is not None

    async def start(self) -> None:
        """Creates the bucket if needed, makes one try at once (a lone replica is active when this returns),
        then keeps trying / renewing in the background."""
        self._kv = await self._bucket_kv()
        await self._step()
        self._task = asyncio.create_task(self._loop(), name=f"leadership.{self.name}")

    async def _bucket_kv(self) -> KeyValue:
        try:
            return await self._js.create_key_value(
                bucket=self._bucket, history=1, ttl=self._ttl, replicas=self._replicas
            )
        except nats.js.errors.BadRequestError:  # it exists with another TTL (the setting changed): take ours
            info = await self._js.stream_info(f"KV_{self._bucket}")
            info.config.max_age = self._ttl
            info.config.duplicate_window = min(info.config.duplicate_window or self._ttl, self._ttl)
            await self._js.update_stream(info.config)
            return await self._js.key_value(self._bucket)

    async def stop(self) -> None:
        """Stops trying; if active: ``on_loss``, then the key is deleted: another replica takes over."""
        await cancel_and_wait(self._task)
        self._task = None
        revision = self._revision
        if revision is None:
            return
        await self._resign("let go", quiet=True)
        if self._kv is not None:
            with contextlib.suppress(*_RENEW_FAILURES):
                await asyncio.wait_for(self._kv.delete(self._key, last=revision), 5)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self._step()
            except Exception:
                log.exception("lease step failed; trying again", lease=self.name)

    async def _step(self) -> None:
        assert self._kv is not None
        try:
            if self._revision is None:
                await self._acquire(self._kv)
            else:
                self._revision = await asyncio.wait_for(
                    self._kv.update(self._key, self._holder, last=self._revision), self._ttl / 3
                )
                self._renewed = time.monotonic()
        except nats.js.errors.KeyWrongLastSequenceError:
            if self._revision is not None:
                await self._resign("taken over by another replica")
        except _RENEW_FAILURES as exc:
            # Unsure whether the key was renewed: stay active only while it surely has not expired.
            if self._revision is not None and time.monotonic() - self._renewed > self._ttl * 0.6:
                await self._resign(f"could not renew: {type(exc).__name__}")

    async def _acquire(self, kv: KeyValue) -> None:
        try:
            revision = await asyncio.wait_for(kv.create(self._key, self._holder), self._ttl / 3)
        except nats.js.errors.KeyWrongLastSequenceError:
            entry = await kv.get(self._key)
            if entry.value != self._holder or entry.revision is None:
                return  # another replica is active
            revision = await kv.update(self._key, self._holder, last=entry.revision)  # our own, from before
        self._revision, self._renewed = revision, time.monotonic()
        LEADING.labels(self.name).set(1)
        log.info("lease acquired: active", lease=self.name)
        try:
            await self._on_gain()
        except BaseException:
            await self._resign("start failed")
            raise

    async def _resign(self, why: str, quiet: bool = False) -> None:
        self._revision = None
        LEADING.labels(self.name).set(0)
        (log.info if quiet else log.warning)("lease given up: standing by", lease=self.name, why=why)
        await self._on_loss()
