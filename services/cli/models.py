"""``ravenctl models ...``: list, get, publish, unpublish, lineage, download, stats, compare, import, plot,
report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.tree import Tree

from common.client import RavenClient
from common.proto.raven.v1 import trained_model_pb2, types_pb2
from services.cli import model_aliases, model_compare, model_report, plots
from services.cli.context import CliError, call, emit, fail, model_name
from services.cli.render import (
    OVERALL_METRICS,
    decision_text,
    fmt,
    key_values,
    metric,
    model_detail,
    models_table,
)

app = typer.Typer(help="Trained models: registry, publication, lineage, artifacts.", no_args_is_help=True)
app.command("report")(model_report.report)
app.command("compare")(model_compare.compare)
app.add_typer(model_aliases.app, name="alias")

Name = Annotated[str, typer.Argument(help="trainedModels/{id} or just the id")]
ORDER_BY = {"newest": trained_model_pb2.CREATE_TIME_DESC, "map": trained_model_pb2.BBOX_MAP_DESC}


def parse_kind(value: str) -> str:
    if value.upper() not in types_pb2.ArtifactKind.keys()[1:]:
        choices = ", ".join(n.lower() for n in types_pb2.ArtifactKind.keys()[1:])
        raise fail(f"unknown artifact kind {value!r}; choose from {choices}")
    return value.upper()


@app.command("list")
def list_models(
    ctx: typer.Context,
    display_name: str = "",
    published: Annotated[
        bool | None, typer.Option("--published/--unpublished", help="filter by publication")
    ] = None,
    base_model: str = "",
    dataset: str = "",
    template: str = "",
    min_map: Annotated[float, typer.Option(help="only models with val bbox mAP ≥ this")] = 0.0,
    order_by: Annotated[str, typer.Option(help="newest | map")] = "newest",
    owner: str = "",
    page_size: int = 0,
    page_token: str = "",
    all_pages: Annotated[bool, typer.Option("--all", help="follow page tokens to the end")] = False,
) -> None:
    """List trained models."""
    if order_by not in ORDER_BY:
        raise fail(f"unknown order {order_by!r}; choose newest or map")
    filters: dict[str, Any] = {
        "display_name": display_name,
        "published": published,
        "dataset": dataset,
        "model_template": template,
        "base_model": model_name(base_model) if base_model else "",
        "min_bbox_map": min_map,
        "order_by": ORDER_BY[order_by],
        "owner": owner,
    }

    async def work(client: RavenClient) -> trained_model_pb2.ListTrainedModelsResponse:
        if not all_pages:
            return await client.list_models(page_size=page_size, page_token=page_token, **filters)
        models = [m async for m in client.iter_models(page_size=page_size, **filters)]
        return trained_model_pb2.ListTrainedModelsResponse(trained_models=models, total_size=len(models))

    page = call(ctx, work)
    footer = f"{len(page.trained_models)} of {page.total_size}"
    if page.next_page_token:
        footer += f"; next page: {page.next_page_token}"
    emit(ctx, page, models_table(page.trained_models, footer))


@app.command()
def get(ctx: typer.Context, name: Name) -> None:
    """Show one model: lineage fields, metrics, per-class AP, artifacts."""
    model = call(ctx, lambda client: client.get_model(model_name(name)))
    emit(ctx, model, *model_detail(model))


@app.command()
def publish(
    ctx: typer.Context,
    name: Name,
    min_map: Annotated[float, typer.Option(help="refuse when val bbox mAP is below this")] = 0.0,
    require_better: Annotated[
        bool, typer.Option(help="also refuse when its val mAP is below the best published one's")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="publish even when a gate refuses (superadmin; recorded)")
    ] = False,
) -> None:
    """Publish a model for production use. The champion gate compares it with the family's champion on the
    champion's dataset version test split; passing moves the champion alias to it."""
    model = call(
        ctx,
        lambda client: client.publish_model(
            model_name(name), min_bbox_map=min_map, require_better_than_published=require_better, force=force
        ),
    )
    gate = f"\ngate: {decision_text(model.publish_decision)}" if model.HasField("publish_decision") else ""
    emit(ctx, model, f"published {model.name} ({model.display_name} v{model.version}){gate}")


@app.command()
def unpublish(ctx: typer.Context, name: Name) -> None:
    """Withdraw a model from production use."""
    model = call(ctx, lambda client: client.unpublish_model(model_name(name)))
    emit(ctx, model, f"unpublished {model.name}")


def _label(node: trained_model_pb2.LineageNode, current: bool = False) -> str:
    published = " [green]published[/]" if node.published else ""
    text = f"{node.trained_model} {node.display_name} v{node.version}  mAP {node.bbox_map:.3f}{published}"
    text += f"  [dim]{node.dataset}[/]" if node.dataset else ""
    if node.dataset_snapshot_sha256:  # what exactly it was trained on: snapshot, and the version's split
        split = f" split {node.split_sha256[:12]}" if node.split_sha256 else ""
        text += f"  [dim]snapshot {node.dataset_snapshot_sha256[:12]}{split}[/]"
    return f"[bold]{text}[/]" if current else text


def lineage_tree(lineage: trained_model_pb2.ModelLineage) -> Tree:
    """Root ancestor at the top, the model in bold, its descendants below it."""
    chain = [*reversed(lineage.ancestors), lineage.model]
    tree = Tree(_label(chain[0], current=len(chain) == 1))
    branch = tree
    for node in chain[1:]:
        branch = branch.add(_label(node, current=node is chain[-1]))
    branches = {lineage.model.trained_model: branch}
    for child in lineage.descendants:  # breadth first: a parent comes before its children
        parent = branches.get(child.base_model, branch)
        branches[child.trained_model] = parent.add(_label(child))
    return tree


@app.command()
def lineage(
    ctx: typer.Context, name: Name, max_depth: Annotated[int, typer.Option(help="0 = unlimited")] = 0
) -> None:
    """Ancestors and descendants of a model as a tree."""
    result = call(ctx, lambda client: client.get_lineage(model_name(name), max_depth=max_depth))
    emit(ctx, result, lineage_tree(result))


@app.command()
def download(
    ctx: typer.Context,
    name: Name,
    kind: Annotated[
        str, typer.Option(help="checkpoint | config | metrics | log | curves | split_manifest")
    ] = "checkpoint",
    dest: Annotated[Path, typer.Option(help="file, or directory to keep the server's file name")] = Path("."),
    resume: Annotated[bool, typer.Option(help="continue a partial download left by an earlier try")] = True,
    chunk_size: Annotated[int, typer.Option(hidden=True)] = 0,
) -> None:
    """Download an artifact (resumable, sha256 verified)."""
    artifact_kind = parse_kind(kind)
    result = call(
        ctx,
        lambda client: client.download(
            model_name(name), artifact_kind, dest, resume=resume, chunk_size=chunk_size
        ),
    )
    data = {
        "path": str(result.path),
        "size": result.size,
        "sha256": result.sha256,
        "filename": result.filename,
        "resumed_from": result.resumed_from,
    }
    resumed = f", resumed at {result.resumed_from} B" if result.resumed_from else ""
    emit(ctx, data, f"saved {result.path} ({result.size} B, sha256 {result.sha256} verified{resumed})")


@app.command()
def stats(ctx: typer.Context, name: Name) -> None:
    """Training statistics of a model."""
    result = call(ctx, lambda client: client.get_model_statistics(model_name(name)))
    val = result.evaluation.val
    rows = [
        ("model", result.trained_model),
        ("training seconds", fmt(result.training_seconds, 1)),
        ("parameters", f"{result.parameter_count:,}"),
        ("epochs", result.epochs),
        ("learning rate", result.learning_rate),
        ("average loss", fmt(result.average_loss, 4)),
        ("best epoch", result.evaluation.best_epoch),
        *((f"val {m}", metric(getattr(val, m))) for m in OVERALL_METRICS),
    ]
    emit(ctx, result, key_values(f"statistics of {result.trained_model}", rows))


@app.command("import")
def import_model(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="display name")],
    config_uri: Annotated[str, typer.Option(help="config key in the artifact store")],
    checkpoint_uri: Annotated[str, typer.Option(help="checkpoint key in the artifact store")],
    classes: Annotated[str, typer.Option(help="comma-separated class names")] = "",
    template: str = "",
    description: str = "",
    request_id: str = "",
) -> None:
    """Register a root (base) model from files already in the artifact store."""
    model = call(
        ctx,
        lambda client: client.import_model(
            display_name=name,
            config_uri=config_uri,
            checkpoint_uri=checkpoint_uri,
            description=description,
            class_names=[c.strip() for c in classes.split(",") if c.strip()],
            model_template=template,
            request_id=request_id,
        ),
    )
    emit(ctx, model, *model_detail(model))


@app.command()
def plot(
    ctx: typer.Context,
    name: Name,
    out: Annotated[Path | None, typer.Option(help="PNG path (default: {id}-curves.png)")] = None,
    source: Annotated[str, typer.Option(help="auto | history | artifact")] = "auto",
) -> None:
    """Training curves PNG: drawn from the model's per-epoch evaluation history, or its CURVES artifact."""
    if source not in ("auto", "history", "artifact"):
        raise fail(f"unknown source {source!r}; choose auto, history or artifact")
    full = model_name(name)
    path = out or Path(f"{full.rsplit('/', 1)[-1]}-curves.png")

    async def work(client: RavenClient) -> dict[str, Any]:
        model = await client.get_model(full)
        history = model.evaluation.history
        if history and source != "artifact":
            points = plots.plot_epoch_history(
                history, path, f"{model.display_name} v{model.version} ({full})"
            )
            return {"path": str(path), "source": "history", "points": points}
        if source == "history":
            raise CliError(f"{full} has no evaluation history")
        if not any(a.kind == types_pb2.CURVES for a in model.artifacts):
            raise CliError(f"{full} has neither an evaluation history nor a CURVES artifact")
        result = await client.download(full, types_pb2.CURVES, path, resume=False)
        return {"path": str(result.path), "source": "artifact"}

    result = call(ctx, work)
    emit(ctx, result, f"wrote {result['path']} (from {result['source']})")
