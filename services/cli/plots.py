"""Training-curve and dataset-profile PNGs (matplotlib, headless)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from common.proto.raven.v1 import datasets_pb2, types_pb2


def _pyplot():  # type: ignore[no-untyped-def]
    # Imported on use: matplotlib is slow to import and most commands never plot.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_progress(snapshots: Sequence[types_pb2.ProgressSnapshot], path: Path, title: str) -> int:
    """Losses and learning rate per iteration, validation metrics per epoch; returns the points plotted."""
    losses: dict[str, list[tuple[int, float]]] = defaultdict(list)
    lrs: list[tuple[int, float]] = []
    val: dict[str, dict[int, float]] = defaultdict(dict)
    for snap in snapshots:
        for loss in snap.losses:
            losses[loss.name].append((snap.iter, loss.value))
        if snap.learning_rate:
            lrs.append((snap.iter, snap.learning_rate))
        for metric in snap.val_metrics:
            val[metric.name][snap.epoch] = metric.value
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, points in sorted(losses.items()):
        axes[0].plot(*zip(*points, strict=True), label=name)
    axes[0].set(title="loss", xlabel="iteration")
    if lrs:
        axes[1].plot(*zip(*lrs, strict=True))
    axes[1].set(title="learning rate", xlabel="iteration")
    for name, by_epoch in sorted(val.items()):
        epochs = sorted(by_epoch)
        axes[2].plot(epochs, [by_epoch[e] for e in epochs], marker="o", label=name)
    axes[2].set(title="validation", xlabel="epoch")
    for axis in (axes[0], axes[2]):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")
    fig.suptitle(title)
    _save(fig, path)
    return sum(len(p) for p in losses.values()) + len(lrs) + sum(len(v) for v in val.values())


def validated_epochs(history: Sequence[types_pb2.EpochMetrics]) -> list[types_pb2.EpochMetrics]:
    """The epochs that were validated: the others carry COCO's -1 ("no value"), which is not a score."""
    return [h for h in history if h.bbox_map >= 0]


def plot_epoch_history(history: Sequence[types_pb2.EpochMetrics], path: Path, title: str) -> int:
    """bbox mAP / mAP50 per validated epoch and train loss per epoch from a model's evaluation history."""
    epochs = [h.epoch for h in history]
    validated = validated_epochs(history)
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    validated_at = [h.epoch for h in validated]
    left.plot(validated_at, [h.bbox_map for h in validated], marker="o", label="bbox mAP")
    left.plot(validated_at, [h.bbox_map_50 for h in validated], marker="o", label="bbox mAP50")
    left.set(title="validation", xlabel="epoch")
    left.legend(fontsize="small")
    right.plot(epochs, [h.train_loss for h in history], marker="o")
    right.set(title="train loss", xlabel="epoch")
    fig.suptitle(title)
    _save(fig, path)
    return len(history)


def plot_dataset_profile(profile: datasets_pb2.DatasetProfile, path: Path, title: str) -> int:
    """Bar charts of the box-size bins (sqrt(w*h) px), the COCO area classes and boxes per image; returns the
    bars drawn."""
    panels = [
        ("box size, sqrt(w*h) px", profile.box_sizes, "boxes"),
        ("COCO area class", profile.coco_box_sizes, "boxes"),
        ("boxes per image", profile.boxes_per_image_histogram, "images"),
    ]
    panels = [panel for panel in panels if panel[1]]
    plt = _pyplot()
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5 * max(len(panels), 1), 4), squeeze=False)
    for axis, (name, bins, unit) in zip(axes[0], panels, strict=False):
        labels = [b.label for b in bins]
        bars = axis.bar(labels, [b.count for b in bins], color="tab:blue")
        axis.bar_label(bars, fontsize="small")
        axis.set(title=name, ylabel=unit)
        axis.tick_params(axis="x", labelrotation=30)
    fig.suptitle(title)
    _save(fig, path)
    return sum(len(bins) for _, bins, _ in panels)


def _save(fig, path: Path) -> None:  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
