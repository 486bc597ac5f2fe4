"""training_run's Prometheus gauges beyond the per-RPC ones (``common.grpc_interceptors``).

Database and JetStream values are refreshed every few seconds by a ``GaugeRefresher``; the watcher gauges read
this process's hubs at scrape time.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from prometheus_client import Gauge

from common.hyperparameters import MAX_GPUS
from common.metrics import Backlog, GaugeRefresher, consumer_backlog, subject_messages
from common.nats_streams import StreamNames, worker_consumer
from services.training_run.adapters.run_feeds import RunChangesHub, RunFeedHub
from services.training_run.entrypoints.event_consumer import DURABLE as TRACKER
from services.training_run.service_layer.services import TrainingRunService

RUNS = Gauge("raven_training_runs", "Training runs by state (whole database)", ["state"])
RUNS_BY_PHASE = Gauge(
    "raven_training_runs_by_phase", "Training runs by state and phase (whole database)", ["state", "phase"]
)
OLDEST_PENDING = Gauge(
    "raven_training_run_oldest_pending_seconds",
    "Age (since creation) of the oldest PENDING run; 0 when none is pending. A growing value means queued "
    "work nobody takes: no worker, or poison jobs",
)
JOBS_WAITING = Gauge(
    "raven_training_run_jobs_waiting",
    "Training jobs queued for a worker and not yet delivered, all run sizes together (each size's consumer "
    "num_pending; for a size no worker attached to yet, the messages on its subject)",
)
JOBS_IN_FLIGHT = Gauge(
    "raven_training_run_jobs_in_flight",
    "Training jobs delivered to a worker and not yet acknowledged, all run sizes together",
)
JOBS_WAITING_BY_SIZE = Gauge(
    "raven_training_run_jobs_waiting_by_gpus",
    "Training jobs queued and not yet delivered, by run size (hyperparameters.gpus; its consumer "
    "trainer-workers[-gpus-N]); every size 1..8 reported, zeros included",
    ["gpus"],
)
JOBS_IN_FLIGHT_BY_SIZE = Gauge(
    "raven_training_run_jobs_in_flight_by_gpus",
    "Training jobs delivered to a worker of that run size and not yet acknowledged",
    ["gpus"],
)
EVENTS_LAG = Gauge(
    "raven_training_run_events_lag",
    "Run events in the stream not yet delivered to the tracker consumer that applies them (num_pending)",
)
EVENTS_IN_FLIGHT = Gauge(
    "raven_training_run_events_in_flight", "Run events delivered to the tracker and not yet acknowledged"
)
OUTBOX_UNSENT = Gauge("raven_training_run_outbox_unsent", "Outbox messages committed but not yet published")
WATCHERS = Gauge("raven_training_run_watchers", "Open watch streams in this process", ["rpc"])
WATCH_FEEDS = Gauge(
    "raven_training_run_watch_feeds", "Runs with a live JetStream feed for watchers in this process"
)


async def training_backlogs(js: JetStreamContext, names: StreamNames) -> dict[int, Backlog]:
    """Each run size's training job backlog: its durable consumer's, or, before a worker of that size
    attached (no consumer yet), the jobs stored on its subject (kept by the work-queue stream till acked)."""
    stored: dict[str, int] | None = None
    out: dict[int, Backlog] = {}
    for size in range(1, MAX_GPUS + 1):
        backlog = await consumer_backlog(js, names.jobs, worker_consumer(size))
        if backlog is None:
            if stored is None:
                stored = await subject_messages(js, names.jobs, f"{names.jobs_subject}.>")
                stored.update(await subject_messages(js, names.jobs, names.jobs_subject))
            backlog = Backlog(pending=stored.get(names.training_jobs_subject(size), 0), ack_pending=0)
        out[size] = backlog
    return out


def metrics_refresher(
    service: TrainingRunService,
    js: JetStreamContext,
    names: StreamNames,
    feeds: RunFeedHub,
    changes: RunChangesHub,
    interval: float = 5.0,
) -> GaugeRefresher:
    WATCHERS.labels("WatchTrainingRun").set_function(lambda: feeds.watchers)
    WATCHERS.labels("WatchTrainingRuns").set_function(lambda: changes.watchers)
    WATCH_FEEDS.set_function(lambda: feeds.subscriptions)

    async def refresh() -> None:
        counts = await service.counts()
        for state, count in counts.by_state.items():
            RUNS.labels(state.name).set(count)
        for (state, phase), count in counts.by_state_and_phase.items():
            RUNS_BY_PHASE.labels(state.name, phase.name).set(count)
        OLDEST_PENDING.set(counts.oldest_pending_seconds)
        OUTBOX_UNSENT.set(counts.unsent_messages)
        backlogs = await training_backlogs(js, names)
        JOBS_WAITING.set(sum(b.pending for b in backlogs.values()))
        JOBS_IN_FLIGHT.set(sum(b.ack_pending for b in backlogs.values()))
        for size, backlog in backlogs.items():
            JOBS_WAITING_BY_SIZE.labels(str(size)).set(backlog.pending)
            JOBS_IN_FLIGHT_BY_SIZE.labels(str(size)).set(backlog.ack_pending)
        events = await consumer_backlog(js, names.events, TRACKER)
        EVENTS_LAG.set(events.pending if events else 0)
        EVENTS_IN_FLIGHT.set(events.ack_pending if events else 0)

    return GaugeRefresher("training_run", refresh, interval)
