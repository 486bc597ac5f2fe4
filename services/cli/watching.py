"""Following one run live: a rich progress bar for people, JSON lines for scripts; exit code = outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from common.client import RavenClient, RavenError
from common.proto.raven.v1 import training_run_pb2, types_pb2
from services.cli.render import phase_name, print_json_line, state_name

EXIT_SUCCEEDED = 0
EXIT_NOT_SUCCEEDED = 1


@dataclass
class WatchOutcome:
    run: training_run_pb2.TrainingRun
    state: int  # terminal state reached (SUCCEEDED / FAILED / CANCELLED)
    reason: str
    resume_token: str

    @property
    def exit_code(self) -> int:
        return EXIT_SUCCEEDED if self.state == types_pb2.SUCCEEDED else EXIT_NOT_SUCCEEDED


def _eta(progress: types_pb2.ProgressSnapshot) -> str:
    seconds = progress.eta.seconds
    if not seconds:
        return "-"
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


def _fields(progress: types_pb2.ProgressSnapshot, state: int) -> dict[str, Any]:
    loss = next((x.value for x in progress.losses if x.name == "loss"), None)
    if loss is None and progress.losses:
        loss = sum(x.value for x in progress.losses)
    return {
        "phase": phase_name(progress.phase) if state == types_pb2.RUNNING else state_name(state),
        "epoch": f"{progress.epoch}/{progress.max_epochs}" if progress.max_epochs else "-",
        "iteration": f"{progress.iter}/{progress.max_iters}" if progress.max_iters else "-",
        "loss": f"{loss:.4f}" if loss is not None else "-",
        "lr": f"{progress.learning_rate:.2e}" if progress.learning_rate else "-",
        "eta": _eta(progress),
    }


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.fields[phase]:<17}"),
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        TextColumn("iter {task.fields[iteration]}"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("lr {task.fields[lr]}"),
        TextColumn("ETA {task.fields[eta]}"),
        TimeElapsedColumn(),
        console=Console(highlight=False, log_path=False),
    )


def _describe(event: training_run_pb2.WatchTrainingRunResponse) -> str:
    e = event.event
    kind = e.WhichOneof("payload")
    if kind == "state_changed":
        change = e.state_changed
        reason = f" ({change.reason})" if change.reason else ""
        return f"{state_name(change.from_state)} → {state_name(change.to_state)}{reason}"
    if kind == "phase_changed":
        return f"phase {phase_name(e.phase_changed.phase)}"
    if kind == "started":
        resumed = f", resumed from {e.started.resumed_from}" if e.started.resumed else ""
        return f"attempt {e.attempt} started on {e.started.worker_id} ({e.started.device}{resumed})"
    if kind == "model_registered":
        return f"model registered: trainedModels/{e.model_registered.trained_model_id}"
    return ""


async def follow(client: RavenClient, name: str, resume_token: str, as_json: bool) -> WatchOutcome:
    """Stream the run's events until its terminal event; the client reconnects (resume token) by itself."""
    last: training_run_pb2.WatchTrainingRunResponse | None = None
    if as_json:
        async for response in client.watch(name, resume_token):
            print_json_line(response)
            last = response
    else:
        with _progress_bar() as bar:
            task = bar.add_task(name, total=None, **_fields(types_pb2.ProgressSnapshot(), types_pb2.PENDING))
            progress = types_pb2.ProgressSnapshot()
            async for response in client.watch(name, resume_token):
                last = response
                run = response.training_run
                if run.progress.max_iters or run.progress.phase:
                    progress = run.progress  # keep the last real snapshot when an event carries none
                bar.update(
                    task,
                    completed=progress.iter,
                    total=progress.max_iters or None,
                    **_fields(progress, run.state),
                )
                line = _describe(response)
                if line:
                    bar.console.log(line)
    if last is None:
        raise RavenError(grpc.StatusCode.UNAVAILABLE, f"the watch of {name} ended without any event")
    change = last.event.state_changed
    return WatchOutcome(last.training_run, change.to_state, change.reason, last.resume_token)


def finish(outcome: WatchOutcome) -> None:
    """Say how the run ended (on stderr unless it succeeded) and exit 0 on SUCCEEDED, 1 otherwise."""
    run = outcome.run
    if outcome.state == types_pb2.SUCCEEDED:
        typer.echo(f"run {run.name} SUCCEEDED: model {run.trained_model or '-'}", err=True)
    elif outcome.state == types_pb2.FAILED:
        failure = run.failure
        typer.echo(
            f"run {run.name} FAILED: {types_pb2.FailureKind.Name(failure.kind)}: {failure.message}", err=True
        )
        for detail in failure.details:
            typer.echo(f"  - {detail}", err=True)
    else:
        reason = f": {outcome.reason}" if outcome.reason else ""
        typer.echo(f"run {run.name} {state_name(outcome.state)}{reason}", err=True)
    raise typer.Exit(outcome.exit_code)
