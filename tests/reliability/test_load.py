"""Load: concurrent watchers (a separate client process, several channels) and a steady stream of creates
against one replica of each service, without a worker (jobs just queue up). Zero errors; Create and
event→watcher latency percentiles are reported (and printed as a table).

Scale: RAVEN_RELIABILITY_WATCHERS (default 100), RAVEN_RELIABILITY_LOAD_SECONDS (5),
RAVEN_RELIABILITY_CREATE_RATE (5 per second), RAVEN_RELIABILITY_CHANNELS (4); with
RAVEN_RELIABILITY_RUNS >= 20 (``make reliability``) the defaults become 1,000 watchers, 60 s,
10 creates/s, 10 channels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from scripts.stack import ROOT, Stack
from tests.reliability import harness

pytestmark = [pytest.mark.timeout(1800)]

LONG = harness.runs_per_scenario(1) >= 20
WATCHERS = int(os.environ.get("RAVEN_RELIABILITY_WATCHERS", 1000 if LONG else 100))
SECONDS = float(os.environ.get("RAVEN_RELIABILITY_LOAD_SECONDS", 60 if LONG else 5))
CREATE_RATE = float(os.environ.get("RAVEN_RELIABILITY_CREATE_RATE", 10 if LONG else 5))
CHANNELS = int(os.environ.get("RAVEN_RELIABILITY_CHANNELS", 10 if LONG else 4))


@pytest.fixture(scope="module")
def bare_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with harness.make_stack(tmp_path_factory.mktemp("load"), worker=False) as running:
        yield running


def table(result: dict) -> str:
    rows = [("Create", result["create_ms"]), ("event → watcher", result["event_to_watcher_ms"])]
    lines = [
        f"{result['watchers']} watchers on {result['channels']} channels, {result['creates']} creates in "
        f"{result['seconds']} s ({result['create_rate']}/s), {result['events_delivered']} events delivered, "
        f"{result['errors']} errors",
        f"{'latency (ms)':<16}{'n':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}",
    ]
    for label, p in rows:
        lines.append(f"{label:<16}{p['n']:>8}{p.get('p50', 0):>9}{p.get('p95', 0):>9}{p.get('p99', 0):>9}"
                     f"{p.get('max', 0):>9}")  # fmt: skip
    return "\n".join(lines)


def test_watchers_and_creates_under_load(bare_stack: Stack) -> None:
    started = time.monotonic()
    command = [
        sys.executable, "-m", "tests.reliability.load_client", "--watchers", str(WATCHERS),
        "--seconds", str(SECONDS), "--create-rate", str(CREATE_RATE), "--channels", str(CHANNELS),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, env=bare_stack.env(), capture_output=True, text=True, timeout=1500
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    harness.record("load", {**result, "duration_s": round(time.monotonic() - started, 1)})
    print("\n" + table(result))
    assert done.returncode == 0 and result["errors"] == 0, result["error_samples"]
    assert result["creates"] >= 0.8 * CREATE_RATE * SECONDS
    assert result["events_delivered"] >= result["events_published"]  # each per watcher: checked by the client
    assert result["create_ms"]["n"] == result["creates"]
