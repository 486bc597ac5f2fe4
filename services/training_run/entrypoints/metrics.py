"""training_run's Prometheus gauges beyond the per-RPC ones (``common.grpc_interceptors``).

Database and JetStream values are refreshed every few seconds by a ``GaugeRefresher``; the watcher gauges read
this process's hubs at scrape time.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from prometheus_client import Gauge

from common.metrics import GaugeRefresher, consumer_backlog, stream_messages
from common.nats_streams import WORKER_CONSUMER, StreamNames
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
    "Jobs queued for a worker and not yet delivered (the workers' consumer num_pending; before any worker "
    "attached, the job stream's message count)",
)
JOBS_IN_FLIGHT = Gauge(
    "raven_training_run_jobs_in_flight", "Jobs delivered to a worker and not yet acknowledged"
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
        jobs = await consumer_backlog(js, names.jobs, WORKER_CONSUMER)
        if jobs is None:
            JOBS_WAITING.set(await stream_messages(js, names.jobs))
            JOBS_IN_FLIGHT.set(0)
        else:
            JOBS_WAITING.set(jobs.pending)
            JOBS_IN_FLIGHT.set(jobs.ack_pending)
        events = await consumer_backlog(js, names.events, TRACKER)
        EVENTS_LAG.set(events.pending if events else 0)
        EVENTS_IN_FLIGHT.set(events.ack_pending if events else 0)

    return GaugeRefresher("training_run", refresh, interval)
