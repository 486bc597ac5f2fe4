"""Prometheus gauges that need a query (database counts, JetStream backlogs), refreshed in the background.

Each service declares its gauges next to its wiring and hands a ``refresh`` coroutine to ``GaugeRefresher``;
the HTTP endpoint (``common.grpc_server.start_metrics_endpoint``) only reads the last values, so a scrape
never queries anything. Every replica exports the same database-wide values: aggregate them with ``max``,
not ``sum``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import Counter, Gauge

from common.logging import get_logger
from common.tasks import cancel_and_wait

log = get_logger("metrics")

REFRESH_FAILURES = Counter(
    "raven_metrics_refresh_failures_total", "Failed refreshes of query-based gauges", ["refresher"]
)
REFRESHED = Gauge(
    "raven_metrics_refresh_timestamp_seconds", "When query-based gauges were last refreshed", ["refresher"]
)


@dataclass(frozen=True)
class Backlog:
    pending: int  # not yet delivered to the consumer
    ack_pending: int  # delivered, not yet acknowledged


async def consumer_backlog(js: JetStreamContext, stream: str, durable: str) -> Backlog | None:
    """The durable consumer's backlog, None when it does not exist (yet)."""
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        return None
    return Backlog(pending=info.num_pending or 0, ack_pending=info.num_ack_pending or 0)


async def subject_messages(js: JetStreamContext, stream: str, subjects: str) -> dict[str, int]:
    """Messages stored per subject matching ``subjects`` (a subject or a wildcard); absent: none stored."""
    info = await js.stream_info(stream, subjects_filter=subjects)
    return {subject: int(count) for subject, count in (info.state.subjects or {}).items()}


class GaugeRefresher:
    """Runs ``refresh`` at start and then every ``interval`` seconds; a failure is logged and counted."""

    def __init__(self, name: str, refresh: Callable[[], Awaitable[None]], interval: float = 5.0) -> None:
        self._name = name
        self._refresh = refresh
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self._name}.metrics")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def refresh_once(self) -> None:
        try:
            await self._refresh()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            REFRESH_FAILURES.labels(self._name).inc()
            log.warning("metrics refresh failed", refresher=self._name, error=repr(exc))
        else:
            REFRESHED.labels(self._name).set_to_current_time()

    async def _run(self) -> None:
        while True:
            await self.refresh_once()
            await asyncio.sleep(self._interval)
