"""docs/reliability.md is rendered from recorded results, never typed: the renderer on a small run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability import summarize
from tests.reliability.results import record, record_test


def test_rows_are_counted_from_the_recorded_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAVEN_RELIABILITY_RESULTS", str(tmp_path))
    monkeypatch.setenv("RAVEN_RELIABILITY_RUNS", "1")
    record_test("tests/integration/test_dead_letters.py::test_a", "call", "passed", 1.5)
    record_test("tests/integration/test_dead_letters.py::test_b", "call", "failed", 0.5)
    record_test(
        "tests/reliability/test_restarts.py::test_restarts_lose_no_run_and_no_event[0]", "call", "passed", 60
    )
    record("restarts", {"state": "SUCCEEDED", "attempts": 1, "restarts": [1, 2, 3], "events": 70, "models": 1,
                        "duration_s": 60})  # fmt: skip
    (tmp_path / "fuzz_report.json").write_text(json.dumps({"total_cases": 3}))

    document = summarize.render(tmp_path)

    lines = {line.split(" | ")[0]: line for line in document.splitlines() if line.startswith("| ")}
    poison = next(
        line for key, line in lines.items() if key.startswith("| Poison messages (real nats-server")
    )
    assert "2 test executions" in poison and "1 failed, 1 passed" in poison and "Failed: test_b" in poison
    restarts = next(line for key, line in lines.items() if key.startswith("| Restarts mid-run"))
    assert (
        "1 recorded executions" in restarts
        and "runs ended SUCCEEDED 1" in restarts
        and "3 restarts" in restarts
    )
    worker_death = next(line for key, line in lines.items() if key.startswith("| Worker death"))
    assert "not in this run" in worker_death
    assert "`RAVEN_RELIABILITY_RUNS` = 1" in document and "do not edit by hand" in document


def test_tests_are_not_recorded_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAVEN_RELIABILITY_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    record_test("tests/x.py::test_y", "call", "passed", 1.0)
    assert not (tmp_path / "var").exists()
    with pytest.raises(SystemExit, match=r"no tests\.jsonl"):
        summarize.render(tmp_path)
