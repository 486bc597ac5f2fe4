"""Lineage: the DAG of models through their base models, walked from one model in both directions."""

from __future__ import annotations

from dataclasses import dataclass

from services.trained_model.domain.model import TrainedModel

MAX_LINEAGE_DEPTH = 1000


@dataclass(frozen=True)
class LineageNode:
    model_id: str
    display_name: str
    version: int
    base_model_id: str | None
    training_run_id: str | None
    dataset: str
    dataset_snapshot_sha256: str
    bbox_map: float | None
    published: bool
    depth: int  # negative for ancestors, positive for descendants
    redacted: bool = False  # the caller may not see this model: only its name and place are shown
    split_sha256: str = ""  # the dataset version's split it was trained and validated on

    @classmethod
    def of(cls, model: TrainedModel, depth: int, visible: bool = True) -> LineageNode:
        if not visible:
            return cls(model.id, "", 0, model.base_model_id, None, "", "", None, False, depth, redacted=True)
        return cls(
            model.id,
            model.display_name,
            model.version,
            model.base_model_id,
            model.training_run_id,
            model.dataset,
            model.dataset_snapshot_sha256,
            model.bbox_map,
            model.published,
            depth,
            split_sha256=model.split_sha256,
        )


@dataclass(frozen=True)
class Lineage:
    model: LineageNode
    ancestors: list[LineageNode]  # nearest first
    descendants: list[LineageNode]  # breadth first


def effective_depth(max_depth: int) -> int:
    """0 means unlimited; a hard cap protects against pathological chains."""
    return MAX_LINEAGE_DEPTH if max_depth <= 0 else min(max_depth, MAX_LINEAGE_DEPTH)
