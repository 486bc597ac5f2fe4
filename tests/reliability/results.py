"""Where the reliability and security scenarios write what happened, for ``summarize`` to render
docs/reliability.md from (the document is generated from a test run, never typed by hand).

Two kinds of JSON lines under ``RAVEN_RELIABILITY_RESULTS`` (default var/reliability):
``<scenario>.jsonl``, one line per execution of a scenario with its own figures (``record``), and
``tests.jsonl``, one line per test with its outcome and duration (``record_test``, from the pytest hook in
tests/conftest.py, only when ``RAVEN_RELIABILITY_RESULTS`` is set explicitly, as ``make reliability`` does).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

RESULTS_ENV = "RAVEN_RELIABILITY_RESULTS"
TESTS_FILE = "tests.jsonl"


def results_dir() -> Path:
    return Path(os.environ.get(RESULTS_ENV, "var/reliability"))


def _append(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as out:
        out.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **payload}) + "\n")


def record(scenario: str, payload: dict[str, Any]) -> None:
    """Appends one JSON line per scenario execution."""
    _append(results_dir() / f"{scenario}.jsonl", payload)


def record_test(nodeid: str, when: str, outcome: str, duration: float) -> None:
    """One test's outcome (the call phase, or the setup phase when it failed or skipped there)."""
    if not os.environ.get(RESULTS_ENV):
        return
    payload = {
        "nodeid": nodeid,
        "when": when,
        "outcome": outcome,
        "duration_s": round(duration, 2),
        "runs_per_scenario": os.environ.get("RAVEN_RELIABILITY_RUNS", ""),
    }
    _append(results_dir() / TESTS_FILE, payload)
