"""Following a dataset version's preparation until READY or INVALID: a progress bar for people, JSON lines for
scripts; exit 0 on READY, 1 on INVALID with every problem on stderr."""

from __future__ import annotations

from typing import Any

import grpc
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from common.client import RavenClient, RavenError
from common.proto.raven.v1 import datasets_pb2 as pb
from services.cli.dataset_views import problem_line, step_name, version_state
from services.cli.render import print_json_line
from services.cli.watching import EXIT_NOT_SUCCEEDED, EXIT_SUCCEEDED


def describe(response: pb.WatchDatasetVersionResponse) -> str:
    """One line for the events a person wants in the log (progress moves the bar instead)."""
    event = response.event
    kind = event.WhichOneof("payload")
    if kind == "state_changed":
        change = event.state_changed
        reason = f" ({change.reason})" if change.reason else ""
        return f"{version_state(change.from_state)} → {version_state(change.to_state)}{reason}"
    if kind == "started":
        return f"preparation attempt {event.attempt} started on {event.started.worker_id}"
    if kind == "completed":
        count = event.completed.problem_count or len(event.completed.problems)
        return f"prepared: {count} problems" if count else "prepared: no problems"
    if kind == "failed":
        return f"preparation failed: {event.failed.failure.message}"
    return ""


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.fields[step]:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(highlight=False, log_path=False),
    )


def _bar_fields(version: pb.DatasetVersion) -> dict[str, Any]:
    """The preparation step while PREPARING (its progress is kept only then), else the state, bar full at the
    end."""
    progress = version.progress
    if version.state == pb.DATASET_VERSION_STATE_PREPARING and progress.step:
        return {"step": step_name(progress.step), "completed": progress.done, "total": progress.total or None}
    if version.state in (pb.DATASET_VERSION_STATE_READY, pb.DATASET_VERSION_STATE_INVALID):
        return {"step": version_state(version.state), "completed": 1, "total": 1}
    return {"step": version_state(version.state)}


async def follow_version(
    client: RavenClient, name: str, resume_token: str, as_json: bool
) -> pb.DatasetVersion:
    """Stream the version's events until READY or INVALID; returns the version as stored then (with its
    problems)."""
    seen = False
    stream = client.watch_dataset_version(name, resume_token)
    if as_json:
        async for response in stream:
            print_json_line(response)
            seen = True
    else:
        with _progress_bar() as bar:
            task = bar.add_task(name, total=None, step="PENDING")
            async for response in stream:
                seen = True
                bar.update(task, **_bar_fields(response.dataset_version))
                line = describe(response)
                if line:
                    bar.console.log(line)
    version = await client.get_dataset_version(name)
    if not seen and version.state not in (pb.DATASET_VERSION_STATE_READY, pb.DATASET_VERSION_STATE_INVALID):
        raise RavenError(grpc.StatusCode.UNAVAILABLE, f"the watch of {name} ended without any event")
    return version


def finish_version(version: pb.DatasetVersion) -> None:
    """Say how the preparation ended (on stderr) and exit 0 on READY, 1 on INVALID."""
    if version.state == pb.DATASET_VERSION_STATE_READY:
        profile = version.profile
        typer.echo(
            f"{version.name} READY: {profile.images} images, {profile.annotations} boxes "
            f"(ravenctl datasets profile {version.name})",
            err=True,
        )
        raise typer.Exit(EXIT_SUCCEEDED)
    count = version.problem_count or len(version.problems)
    typer.echo(f"{version.name} {version_state(version.state)}: {count} problems", err=True)
    if version.HasField("failure"):
        typer.echo(f"  - {version.failure.message}", err=True)
        for detail in version.failure.details:
            typer.echo(f"  - {detail}", err=True)
    for problem in version.problems:
        typer.echo(f"  - {problem_line(problem)}", err=True)
    if count > len(version.problems):
        typer.echo(f"  ... and {count - len(version.problems)} more", err=True)
    raise typer.Exit(EXIT_NOT_SUCCEEDED)
