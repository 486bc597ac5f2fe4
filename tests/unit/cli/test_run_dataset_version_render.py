"""`ravenctl runs get` shows the dataset version a run on a plain dataset reference trains on."""

from __future__ import annotations

import io

from rich.console import Console

from common.proto.raven.v1 import training_run_pb2, types_pb2
from services.cli.render import run_detail

VERSION = "datasets/d1/versions/2"


def detail_text(run: training_run_pb2.TrainingRun) -> str:
    console = Console(width=160, record=True, file=io.StringIO())
    for table in run_detail(run):
        console.print(table)
    return console.export_text()


def test_a_plain_dataset_run_shows_its_implicit_version_and_its_split() -> None:
    run = training_run_pb2.TrainingRun(
        name="trainingRuns/r1", dataset="waste/v1", dataset_version=VERSION, split_sha256="ab" * 32,
        state=types_pb2.RUNNING,
    )  # fmt: skip
    text = detail_text(run)
    assert "waste/v1" in text and VERSION in text and "ab" * 32 in text
    assert "being prepared" not in text


def test_a_run_waiting_for_its_version_says_so() -> None:
    run = training_run_pb2.TrainingRun(
        name="trainingRuns/r1", dataset="waste/v1", dataset_version=VERSION, state=types_pb2.PENDING
    )
    assert f"{VERSION} (being prepared; queued once READY)" in detail_text(run)


def test_a_run_on_an_explicit_version_shows_it_once() -> None:
    run = training_run_pb2.TrainingRun(
        name="trainingRuns/r1", dataset_version=VERSION, split_sha256="cd" * 32
    )
    text = detail_text(run)
    assert text.count(VERSION) == 1 and "dataset version" not in text
