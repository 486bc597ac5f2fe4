"""`ravenctl runs get` shows what each attempt trained with (an out-of-memory retry's halved batch) and how it
ended (a preemption)."""

from __future__ import annotations

import io

from rich.console import Console

from common.proto.raven.v1 import training_run_pb2
from services.cli.render import run_detail


def test_run_detail_lists_each_attempts_batch_size_and_learning_rate() -> None:
    run = training_run_pb2.TrainingRun(name="trainingRuns/r1", attempt=2)
    run.attempts.add(attempt=1, batch_size=8, learning_rate=0.004, preempted=True,
                     end_reason="preempted: released by w1: worker shutting down")  # fmt: skip
    run.attempts.add(attempt=2, batch_size=4, learning_rate=0.002)
    console = Console(width=120, record=True, file=io.StringIO())
    for table in run_detail(run):
        console.print(table)
    lines = console.export_text().splitlines()
    start = lines.index(next(line for line in lines if line.strip() == "attempts"))
    cells = [[cell.strip() for cell in line.strip("│ ").split("│")] for line in lines[start:]]
    assert [c for c in cells if c[0] in ("1", "2")] == [
        ["1", "8", "0.004", "PREEMPTED: released by w1: worker shutting down"],
        ["2", "4", "0.002"],  # an empty last cell is stripped with the border
    ]
