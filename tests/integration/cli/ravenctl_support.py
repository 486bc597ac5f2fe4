"""Running ravenctl in-process (typer's CliRunner) against the fake servers of a ``FakeStack``, and a run to
look at: shared by the ravenctl test modules."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

from typer.testing import CliRunner, Result

from common.proto.raven.v1 import training_run_pb2, types_pb2
from services.cli.main import app
from tests.helpers import JWT_SECRET, token
from tests.integration.cli.fakes import FakeStack

NO_ENV_TOKEN = {"RAVEN_TOKEN": None, "RAVEN_JWT_SECRET": JWT_SECRET, "COLUMNS": "200"}


def ravenctl(
    stack: FakeStack, *args: str, auth: bool = True, env: dict[str, str | None] | None = None
) -> Result:
    def on_stack_loop(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, stack.loop).result(60)

    base = ["--training-run-addr", stack.training_run_addr, "--trained-model-addr", stack.trained_model_addr]
    if auth:
        base += ["--token", token()]
    return CliRunner().invoke(app, [*base, *args], obj=on_stack_loop, env={**NO_ENV_TOKEN, **(env or {})})


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def add_run(
    stack: FakeStack, run_id: str = "r1", state: int = types_pb2.RUNNING
) -> training_run_pb2.TrainingRun:
    run = training_run_pb2.TrainingRun(
        name=f"trainingRuns/{run_id}", display_name=f"run {run_id}", state=state
    )
    return stack.runs.add(run)
