"""`ravenctl runs get` says when early stopping ended a run, and at which epoch."""

from __future__ import annotations

import io

from rich.console import Console

from common.proto.raven.v1 import training_run_pb2
from services.cli.render import run_detail


def detail_text(run: training_run_pb2.TrainingRun) -> str:
    console = Console(width=120, record=True, file=io.StringIO())
    for table in run_detail(run):
        console.print(table)
    return console.export_text()


def test_run_detail_shows_the_epoch_early_stopping_ended_training() -> None:
    run = training_run_pb2.TrainingRun(name="trainingRuns/r1", stopped_early=True, stopped_epoch=3)
    assert "stopped early at epoch 3" in detail_text(run)


def test_run_detail_says_nothing_of_early_stopping_for_a_run_that_trained_all_epochs() -> None:
    assert "stopped early" not in detail_text(training_run_pb2.TrainingRun(name="trainingRuns/r1"))
