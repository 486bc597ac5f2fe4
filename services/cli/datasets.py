"""``ravenctl datasets ...``: create, list, get, delete, upload, watch, profile, and ``versions create|list``.

Names: a dataset is ``datasets/{id}`` or just ``{id}``; a version ``datasets/{id}/versions/{n}``,
``{id}/versions/{n}`` or just ``{id}/{n}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

from common.client import RavenClient
from common.proto.raven.v1 import datasets_pb2 as pb
from services.cli import plots
from services.cli.context import call, config_of, emit, fail
from services.cli.dataset_views import (
    dataset_detail,
    datasets_table,
    profile_tables,
    version_detail,
    version_state,
    versions_table,
)
from services.cli.dataset_watching import finish_version, follow_version
from services.cli.render import print_json, print_json_line, show, to_dict

app = typer.Typer(
    help="Datasets and their immutable versions: create, upload, follow, profile.", no_args_is_help=True
)
versions_app = typer.Typer(help="Versions of one dataset: create from a URL, list.", no_args_is_help=True)
app.add_typer(versions_app, name="versions")

DatasetArg = Annotated[str, typer.Argument(help="datasets/{id} or just the id")]
VersionArg = Annotated[str, typer.Argument(help="datasets/{id}/versions/{n}, {id}/versions/{n} or {id}/{n}")]
Description = Annotated[str, typer.Option(help="what this version holds (at most 2000 characters)")]
TrainFraction = Annotated[
    float | None, typer.Option(help="split when the dataset carries none: train share (default 0.7)")
]
ValFraction = Annotated[float | None, typer.Option(help="val share (default 0.2; test = the rest)")]
SplitSeed = Annotated[int | None, typer.Option(help="seed of the version's split (default 0)")]
RequestId = Annotated[str, typer.Option(help="idempotency key (default: a new one per invocation)")]
Wait = Annotated[bool, typer.Option(help="follow the preparation until READY (exit 0) or INVALID (exit 1)")]
STATE_CHOICES = [n.removeprefix("DATASET_VERSION_STATE_").lower() for n in pb.DatasetVersionState.keys()[1:]]


def _parts(value: str) -> list[str]:
    parts = [p for p in value.strip().split("/") if p]
    return parts[1:] if parts[:1] == ["datasets"] else parts


def is_version(value: str) -> bool:
    return len(_parts(value)) > 1


def dataset_name(value: str) -> str:
    parts = _parts(value)
    if len(parts) != 1:
        raise fail(f"{value!r} is not a dataset: use datasets/{{id}} or just the id")
    return f"datasets/{parts[0]}"


def version_name(value: str) -> str:
    parts = _parts(value)
    if len(parts) == 3 and parts[1] == "versions":
        parts = [parts[0], parts[2]]
    if len(parts) != 2:
        raise fail(f"{value!r} is not a dataset version: use datasets/{{id}}/versions/{{n}} or {{id}}/{{n}}")
    return f"datasets/{parts[0]}/versions/{parts[1]}"


def split_options(train: float | None, val: float | None, seed: int | None) -> pb.SplitOptions | None:
    if train is None and val is None and seed is None:
        return None
    return pb.SplitOptions(train_fraction=train, val_fraction=val, seed=seed)  # None leaves a field unset


def parse_version_states(values: list[str]) -> list[str]:
    for value in values:
        if value.lower() not in STATE_CHOICES:
            raise fail(f"unknown state {value!r}; choose from {', '.join(STATE_CHOICES)}")
    return [f"DATASET_VERSION_STATE_{v.upper()}" for v in values]


async def _created(
    ctx: typer.Context, client: RavenClient, version: pb.DatasetVersion, wait: bool
) -> pb.DatasetVersion | None:
    """Print a new version (a JSON line when it is followed), then follow it when asked."""
    config = config_of(ctx)
    if config.json:
        (print_json_line if wait else print_json)(version)
    else:
        show(*version_detail(version))
    return await follow_version(client, version.name, "", config.json) if wait else None


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="display name, e.g. 'drone survey 2026'")],
    description: Annotated[str, typer.Option(help="at most 2000 characters")] = "",
    request_id: RequestId = "",
) -> None:
    """Create an empty dataset; add versions with `upload` or `versions create`."""
    dataset = call(
        ctx, lambda client: client.create_dataset(name, description=description, request_id=request_id)
    )
    emit(ctx, dataset, *dataset_detail(dataset))


@app.command("list")
def list_datasets(
    ctx: typer.Context,
    page_size: Annotated[int, typer.Option(help="datasets per page (server default 50)")] = 0,
    page_token: str = "",
    all_pages: Annotated[bool, typer.Option("--all", help="follow page tokens to the end")] = False,
) -> None:
    """List datasets, newest first."""

    async def work(client: RavenClient) -> pb.ListDatasetsResponse:
        if not all_pages:
            return await client.list_datasets(page_size=page_size, page_token=page_token)
        datasets = [d async for d in client.iter_datasets(page_size=page_size)]
        return pb.ListDatasetsResponse(datasets=datasets, total_size=len(datasets))

    page = call(ctx, work)
    footer = f"{len(page.datasets)} of {page.total_size}"
    if page.next_page_token:
        footer += f"; next page: {page.next_page_token}"
    emit(ctx, page, datasets_table(page.datasets, footer))


@app.command()
def get(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="a dataset (datasets/{id}, {id}) or a version ({id}/{n})")],
) -> None:
    """Show a dataset, or a version: state, source, hashes, split, problems."""
    if is_version(name):
        version = call(ctx, lambda client: client.get_dataset_version(version_name(name)))
        emit(ctx, version, *version_detail(version))
    else:
        dataset = call(ctx, lambda client: client.get_dataset(dataset_name(name)))
        emit(ctx, dataset, *dataset_detail(dataset))


@app.command()
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="a dataset (with all its versions) or one version")],
) -> None:
    """Delete a dataset with all its versions, or one version (refused while a run uses it)."""
    if is_version(name):
        full = version_name(name)
        call(ctx, lambda client: client.delete_dataset_version(full))
    else:
        full = dataset_name(name)
        call(ctx, lambda client: client.delete_dataset(full))
    emit(ctx, {"name": full, "deleted": True}, f"deleted {full}")


class UploadBar:
    """Bytes sent, on stderr (stdout stays the version's table or JSON); shown from the first chunk on, never
    for scripts (--output json)."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, sent: int, total: int) -> None:
        if not self._enabled:
            return
        if self._progress is None or self._task is None:
            console = Console(stderr=True, highlight=False)
            columns = (TextColumn("upload"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
            self._progress = Progress(*columns, console=console)
            self._progress.start()
            self._task = self._progress.add_task("upload", total=total)
        self._progress.update(self._task, completed=sent, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


@app.command()
def upload(
    ctx: typer.Context,
    dataset: DatasetArg,
    path: Annotated[
        Path, typer.Argument(exists=True, help="a zip or tar of a COCO dataset, or its directory")
    ],
    description: Description = "",
    train_fraction: TrainFraction = None,
    val_fraction: ValFraction = None,
    split_seed: SplitSeed = None,
    request_id: RequestId = "",
    wait: Wait = False,
) -> None:
    """Upload a COCO dataset as a new version: a zip or tar as it is, or a directory (archived to a temporary
    tar first). The server checks the archive's size and sha256, then prepares the version.

    With --wait and --output json, stdout is JSON lines: the version, then one line per event.
    """
    config = config_of(ctx)
    parent = dataset_name(dataset)
    options = split_options(train_fraction, val_fraction, split_seed)

    async def work(client: RavenClient) -> pb.DatasetVersion | None:
        bar = UploadBar(enabled=not config.json)
        try:
            version = await client.upload_dataset_version(
                parent,
                path,
                description=description,
                split_options=options,
                request_id=request_id,
                on_progress=bar,
            )
        finally:
            bar.close()
        return await _created(ctx, client, version, wait)

    followed = call(ctx, work)
    if followed is not None:
        finish_version(followed)


@versions_app.command("create")
def create_version(
    ctx: typer.Context,
    dataset: DatasetArg,
    source: Annotated[
        str,
        typer.Option("--from", help="fsspec URL of a COCO directory, e.g. file:///data/datasets/survey"),
    ],
    description: Description = "",
    train_fraction: TrainFraction = None,
    val_fraction: ValFraction = None,
    split_seed: SplitSeed = None,
    request_id: RequestId = "",
    wait: Wait = False,
) -> None:
    """Snapshot the COCO dataset at a URL the server can read as a new version (the same files and split
    options give back the existing version)."""
    parent = dataset_name(dataset)
    options = split_options(train_fraction, val_fraction, split_seed)

    async def work(client: RavenClient) -> pb.DatasetVersion | None:
        version = await client.create_dataset_version(
            parent, source, description=description, split_options=options, request_id=request_id
        )
        return await _created(ctx, client, version, wait)

    followed = call(ctx, work)
    if followed is not None:
        finish_version(followed)


@versions_app.command("list")
def list_versions(
    ctx: typer.Context,
    dataset: DatasetArg,
    state: Annotated[
        list[str], typer.Option(help=f"filter by state (repeatable): {', '.join(STATE_CHOICES)}")
    ] = [],  # noqa: B006
    page_size: Annotated[int, typer.Option(help="versions per page (server default 50)")] = 0,
    page_token: str = "",
    all_pages: Annotated[bool, typer.Option("--all", help="follow page tokens to the end")] = False,
) -> None:
    """List a dataset's versions, newest first."""
    parent = dataset_name(dataset)
    states = parse_version_states(state)

    async def work(client: RavenClient) -> pb.ListDatasetVersionsResponse:
        if not all_pages:
            return await client.list_dataset_versions(
                parent, page_size=page_size, page_token=page_token, states=states
            )
        versions = [v async for v in client.iter_dataset_versions(parent, page_size=page_size, states=states)]
        return pb.ListDatasetVersionsResponse(dataset_versions=versions, total_size=len(versions))

    page = call(ctx, work)
    footer = f"{len(page.dataset_versions)} of {page.total_size}"
    if page.next_page_token:
        footer += f"; next page: {page.next_page_token}"
    emit(ctx, page, versions_table(page.dataset_versions, f"versions of {parent}", footer))


@app.command()
def watch(
    ctx: typer.Context,
    name: VersionArg,
    resume_token: Annotated[str, typer.Option(help="continue after this token (from a previous watch)")] = "",
) -> None:
    """Follow a version's preparation until READY (exit 0) or INVALID (exit 1, its problems on stderr).

    With --output json, stdout is one JSON line per event.
    """
    config = config_of(ctx)
    full = version_name(name)
    finish_version(call(ctx, lambda client: follow_version(client, full, resume_token, config.json)))


@app.command()
def profile(
    ctx: typer.Context,
    name: VersionArg,
    png: Annotated[
        Path | None, typer.Option(help="histogram PNG path (default: {id}-v{n}-profile.png)")
    ] = None,
    no_png: Annotated[bool, typer.Option("--no-png", help="print the tables only")] = False,
) -> None:
    """What a READY version holds: images and boxes per split and class, image sizes, box-size histograms
    (px and COCO area), boxes per image, near duplicates, and a recommendation; writes the histograms as PNG.

    JSON: {"name", "state", "profile", "split", "near_duplicate_groups", "png"}.
    """
    full = version_name(name)
    version = call(ctx, lambda client: client.get_dataset_version(full))
    if version.state != pb.DATASET_VERSION_STATE_READY:
        raise fail(
            f"{full} is {version_state(version.state)}: a profile exists once it is READY"
            + (
                f" (ravenctl datasets watch {full})"
                if version.state != pb.DATASET_VERSION_STATE_INVALID
                else ""
            )
        )
    dataset_id, number = full.split("/")[1], full.rsplit("/", 1)[-1]
    path = None if no_png else (png or Path(f"{dataset_id}-v{number}-profile.png"))
    if path is not None:
        try:
            plots.plot_dataset_profile(version.profile, path, f"{full} ({version.profile.images} images)")
        except OSError as exc:
            raise fail(f"cannot write {path}: {exc.strerror or exc}") from None
    data = {
        "name": version.name,
        "state": version_state(version.state),
        "profile": to_dict(version.profile),
        "split": to_dict(version.split),
        "near_duplicate_groups": [to_dict(g) for g in version.near_duplicate_groups],
        "png": str(path) if path else None,
    }
    if config_of(ctx).json:
        print_json(data)
        return
    show(*profile_tables(version))
    if path is not None:
        typer.echo(f"wrote {path}")
