"""The worker process serves Prometheus metrics on RAVEN_METRICS_PORT."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common.nats_launcher import free_port
from tests.helpers import worker_token

ROOT = Path(__file__).resolve().parents[3]


def test_worker_exposes_its_metrics(tmp_path: Path, nats_url: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "RAVEN_DATA_DIR": str(tmp_path),
        "RAVEN_NATS_URL": nats_url,
        "RAVEN_WORKER_TOKEN": worker_token(),
        "RAVEN_METRICS_PORT": str(port),
        "RAVEN_TRAINING_RUN_ADDR": f"127.0.0.1:{free_port()}",
        "RAVEN_SUBJECT_PREFIX": "metricstest",
        "RAVEN_JOBS_STREAM": "METRICS_JOBS",
        "RAVEN_EVENTS_STREAM": "METRICS_EVENTS",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.trainer_worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                break
            except OSError:
                assert process.poll() is None, "worker exited"
                assert time.monotonic() < deadline, "metrics endpoint never answered"
                time.sleep(0.3)
        assert "raven_worker_jobs_active 0.0" in body
        assert "raven_worker_jobs_settled_total" in body
    finally:
        process.terminate()
        process.wait(30)
