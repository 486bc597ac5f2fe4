"""Prometheus metrics of a trainer worker (served on RAVEN_METRICS_PORT)."""

from prometheus_client import Counter, Gauge

JOBS_ACTIVE = Gauge("raven_worker_jobs_active", "jobs this worker is working on now")
JOBS_SETTLED = Counter(
    "raven_worker_jobs_settled_total", "job messages settled, by settlement", ["settlement"]
)
OUTCOMES = Counter("raven_worker_outcomes_total", "terminal outcomes published, by kind", ["outcome"])
