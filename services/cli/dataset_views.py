"""Datasets and their versions for people: lists, a version's detail and its profile as tables that fit the
terminal (80 columns included)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from common.proto.raven.v1 import datasets_pb2 as pb
from services.cli.render import console, key_values, named_table, when
from services.cli.tables import Col, fitted_table

BAR_WIDTH = 20
MAX_IMAGE_SIZES = 10
MAX_NEAR_DUPLICATE_GROUPS = 10
MAX_PROBLEMS_SHOWN = 50


def version_state(state: int) -> str:
    return pb.DatasetVersionState.Name(state).removeprefix("DATASET_VERSION_STATE_") if state else "-"


def step_name(step: int) -> str:
    return pb.DatasetPreparationStep.Name(step).removeprefix("DATASET_PREPARATION_STEP_") if step else "-"


def byte_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # unreachable: GiB ends the loop


def source_text(version: pb.DatasetVersion) -> str:
    if version.source_uri:
        return version.source_uri
    if version.HasField("upload"):
        fmt = pb.ArchiveFormat.Name(version.upload.format).removeprefix("ARCHIVE_FORMAT_").lower()
        return f"upload ({fmt}, {byte_size(version.upload.size_bytes)})"
    return "-"


def problem_line(problem: pb.DatasetProblem) -> str:
    where = ": ".join(part for part in (problem.file, problem.field) if part)
    return f"{where}: {problem.description}" if where else problem.description


def datasets_table(datasets: Sequence[pb.Dataset], footer: str = "", width: int | None = None) -> Table:
    width = width or console().width
    columns = [
        Col("DISPLAY NAME", 1), Col("VERSIONS", 0, justify="right"), Col("LATEST", 3),
        Col("OWNER", 4), Col("CREATED", 2),
    ]  # fmt: skip
    rows = [
        [d.display_name, str(d.version_count), d.latest_version.rsplit("/", 1)[-1] or "-", d.owner,
         when(d.create_time)]
        for d in datasets
    ]  # fmt: skip
    return named_table("datasets", [d.name for d in datasets], columns, rows, width, footer)


def versions_table(
    versions: Sequence[pb.DatasetVersion], title: str, footer: str = "", width: int | None = None
) -> Table:
    width = width or console().width
    columns = [
        Col("STATE", 0, min_width=9), Col("IMAGES", 1, justify="right"), Col("BOXES", 2, justify="right"),
        Col("SIZE", 4, justify="right"), Col("SOURCE", 5), Col("CREATED", 3),
    ]  # fmt: skip
    rows = [
        [
            version_state(v.state),
            str(v.profile.images) if v.HasField("profile") else "-",
            str(v.profile.annotations) if v.HasField("profile") else "-",
            byte_size(v.size_bytes),
            source_text(v),
            when(v.create_time),
        ]
        for v in versions
    ]
    # In a narrow terminal the ID column holds n; the title names the dataset ({id}/{n} is a version's name).
    return named_table(title, [v.name for v in versions], columns, rows, width, footer)


def dataset_detail(dataset: pb.Dataset) -> list[Table]:
    rows: list[tuple[str, Any]] = [
        ("name", dataset.name),
        ("display name", dataset.display_name),
        ("description", dataset.description),
        ("versions", dataset.version_count or "0"),
        ("latest version", dataset.latest_version),
        ("owner", dataset.owner),
        ("created", when(dataset.create_time)),
        ("updated", when(dataset.update_time)),
    ]
    return [key_values(f"dataset {dataset.name}", rows)]


def split_options_text(options: pb.SplitOptions) -> str:
    parts = [f"{name}={getattr(options, name):g}" for name in ("train_fraction", "val_fraction", "seed")
             if options.HasField(name)]  # fmt: skip
    return ", ".join(parts)


def version_detail(version: pb.DatasetVersion, width: int | None = None) -> list[Table]:
    width = width or console().width
    split = version.split
    progress = version.progress
    upload = version.upload
    rows: list[tuple[str, Any]] = [
        ("name", version.name),
        ("state", version_state(version.state)),
        ("description", version.description),
        ("source", source_text(version)),
        ("upload sha256", upload.sha256 if version.HasField("upload") else ""),
        ("snapshot sha256", version.snapshot_sha256),
        ("files", f"{version.file_count} ({byte_size(version.size_bytes)})" if version.file_count else ""),
        ("split options", split_options_text(version.split_options)),
        ("split sha256", version.split_sha256),
        ("split origin", pb.SplitOrigin.Name(split.origin).removeprefix("SPLIT_ORIGIN_").lower()
         if split.origin else ""),
        ("grouped by", split.group_key),
        ("leaks found/moved", f"{split.leaks_found}/{split.leaks_moved}" if split.leaks_found else ""),
        ("near-duplicate groups", len(version.near_duplicate_groups)),
        ("progress", f"{step_name(progress.step)} {progress.done}/{progress.total or '?'}"
         if version.state == pb.DATASET_VERSION_STATE_PREPARING and progress.step else ""),
        ("owner", version.owner),
        ("created", when(version.create_time)),
        ("ready", when(version.ready_time)),
    ]  # fmt: skip
    if version.HasField("failure"):
        rows.append(("failure", version.failure.message))
        rows.extend(("", detail) for detail in version.failure.details)
    tables = [key_values(f"dataset version {version.name}", rows)]
    if split.splits:
        tables.append(splits_table("split", split.splits, width))
    if version.problems:
        shown = version.problems[:MAX_PROBLEMS_SHOWN]
        caption = f"{len(shown)} of {version.problem_count or len(version.problems)} problems"
        columns = [Col("FILE", 0), Col("FIELD", 1), Col("PROBLEM", 0)]
        problem_rows = [[p.file or "-", p.field or "-", p.description] for p in shown]
        tables.append(fitted_table("problems", columns, problem_rows, width, caption))
    return tables


def splits_table(title: str, splits: Sequence[pb.SplitCount], width: int) -> Table:
    columns = [Col("SPLIT"), Col("IMAGES", justify="right"), Col("BOXES", justify="right"),
               Col("GROUPS", 1, justify="right")]  # fmt: skip
    rows = [[s.split, str(s.images), str(s.annotations), str(s.groups or "-")] for s in splits]
    return fitted_table(title, columns, rows, width)


def bar(count: int, largest: int, width: int = BAR_WIDTH) -> str:
    return "█" * round(width * count / largest) if largest else ""


def histogram_table(title: str, bins: Sequence[pb.HistogramBin], unit: str, width: int) -> Table:
    total = sum(b.count for b in bins)
    largest = max((b.count for b in bins), default=0)
    columns = [Col("BIN", 0), Col(unit.upper(), 0, justify="right"), Col("SHARE", 0, justify="right"),
               Col("", 1, min_width=BAR_WIDTH)]  # fmt: skip
    rows = [[b.label, str(b.count), f"{100 * b.count / total:.1f}%" if total else "-", bar(b.count, largest)]
            for b in bins]  # fmt: skip
    return fitted_table(title, columns, rows, width)


def distribution(summary: pb.DistributionSummary, digits: int = 0) -> str:
    return (
        f"min {summary.min:.{digits}f}, median {summary.median:.{digits}f}, "
        f"mean {summary.mean:.1f}, max {summary.max:.{digits}f}"
    )


def profile_tables(version: pb.DatasetVersion, width: int | None = None) -> list[Table]:
    """Everything the profile holds: totals, splits, classes, box sizes (fine and COCO), boxes per image,
    image sizes and the near-duplicate groups."""
    width = width or console().width
    p = version.profile
    summary = key_values(
        "profile",
        [
            ("version", version.name),
            ("images", p.images or "0"),
            ("boxes", p.annotations or "0"),
            ("empty images", p.empty_images or "0"),
            ("image width", distribution(p.image_widths)),
            ("image height", distribution(p.image_heights)),
            ("boxes per image", distribution(p.boxes_per_image, 1)),
            ("EXIF-rotated images", p.exif_rotated_images),
            ("near duplicates", p.near_duplicates_found or "0"),
            ("split leaks", p.leaks_found or "0"),
            ("recommendation", p.recommendation or "none"),
            ("at input size", p.reference_input_size),
        ],
    )
    tables = [summary, splits_table("splits", p.splits, width), classes_table(p, width)]
    tables.append(histogram_table("box sizes, sqrt(w*h) in px", p.box_sizes, "boxes", width))
    tables.append(histogram_table("COCO box sizes (area)", p.coco_box_sizes, "boxes", width))
    if p.boxes_per_image_histogram:
        tables.append(histogram_table("boxes per image", p.boxes_per_image_histogram, "images", width))
    sizes = [[f"{s.width}x{s.height}", str(s.images)] for s in p.image_sizes[:MAX_IMAGE_SIZES]]
    more = len(p.image_sizes) - len(sizes)
    tables.append(
        fitted_table(
            "image sizes", [Col("SIZE"), Col("IMAGES", justify="right")], sizes, width,
            f"{more} more sizes (--output json)" if more > 0 else "",
        )
    )  # fmt: skip
    if version.near_duplicate_groups:
        tables.append(near_duplicates_table(version.near_duplicate_groups, width))
    return tables


def classes_table(p: pb.DatasetProfile, width: int) -> Table:
    split_names = [s.split for s in p.splits]
    columns = [Col("CLASS"), Col("IMAGES", 1, justify="right"), Col("BOXES", justify="right")]
    columns += [Col(f"{name.upper()}", 2, justify="right") for name in split_names]
    rows = []
    for c in p.classes:
        per_split = {s.split: s.annotations for s in c.splits}
        rows.append([c.class_name, str(c.images), str(c.annotations),
                     *(str(per_split.get(name, 0)) for name in split_names)])  # fmt: skip
    return fitted_table("classes", columns, rows, width, "split columns: boxes" if split_names else "")


def near_duplicates_table(groups: Sequence[pb.NearDuplicateGroup], width: int) -> Table:
    shown = groups[:MAX_NEAR_DUPLICATE_GROUPS]
    columns = [Col("FILES", 0), Col("SPLITS", 1), Col("DIST", 2, justify="right"), Col("NOW IN", 0)]
    rows = [
        [
            "\n".join(g.files),
            "\n".join(g.splits),
            "exact" if g.exact else str(g.max_distance),
            g.resolved_split or "reported",
        ]
        for g in shown
    ]
    caption = f"{len(shown)} of {len(groups)} groups" if len(groups) > len(shown) else ""
    return fitted_table("near-duplicate groups", columns, rows, width, caption)
