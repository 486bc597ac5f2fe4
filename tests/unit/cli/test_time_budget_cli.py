"""Issue 17: ravenctl's durations (--max-runtime, --max-pending) and the time budget line of runs get."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from common.proto.raven.v1 import training_run_pb2
from services.cli.durations import duration_message, duration_text, parse_duration
from services.cli.render import budget_text, run_detail


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("1.5m", 90), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), (" 5S ", 5),
     ("0.25", 0.25)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5x", "m", "1h 30m", "-5s", "5s5"])
def test_parse_duration_refuses_what_is_not_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration; write e\.g\. 90, 90s, 5m"):
        parse_duration(text)


def test_duration_round_trip() -> None:
    assert duration_message(90.5).seconds == 90 and duration_message(90.5).nanos == 500_000_000
    assert [duration_text(duration_message(s)) for s in (5, 90, 5400, 2.5)] == [
        "5s",
        "1m30s",
        "1h30m",
        "2.5s",
    ]


def test_budget_line() -> None:
    run = training_run_pb2.TrainingRun(name="trainingRuns/r1")
    assert budget_text(run) == ""
    run.max_pending.CopyFrom(duration_message(3600))
    assert budget_text(run) == "max_pending 1h"
    run.max_runtime.CopyFrom(duration_message(60))
    run.runtime_used.CopyFrom(duration_message(62))
    run.stopped_by_time_budget = True
    assert budget_text(run) == "stopped by time budget (max_runtime 1m, max_pending 1h, used 1m2s)"
    console = Console(width=160, record=True, file=io.StringIO())
    for table in run_detail(run):
        console.print(table)
    assert "stopped by time budget (max_runtime 1m" in console.export_text()
