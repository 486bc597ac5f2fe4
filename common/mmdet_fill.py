"""Filling a resolved config on the worker: the prepared dataset's paths, the work dir, local checkpoints.

The result passes the config gate again before it goes to ``Runner.from_cfg`` (defence in depth: the config
came over NATS).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mmengine.config import Config

from common.config_data import leaf_datasets, restore_types
from common.mmdet_config import META_KEY, SPLITS, ConfigInvalid, FieldViolation, gate, set_classes


def fill_dataset(
    config_data: dict[str, Any],
    prepared: Any,
    work_dir: Path,
    *,
    device: str,
    load_from: str | Path | None,
    resume_from: str | Path | None,
    backbone_checkpoint: str | Path | None = None,
    num_workers: int | None = None,
) -> Config:
    """Returns a Config for ``Runner.from_cfg``: dataset paths, work dir and local checkpoints filled in.

    Args:
        config_data: ``ResolvedConfig.data`` (also after a JSON or Struct round trip).
        prepared: a ``PreparedDataset`` (image_root, train_ann, val_ann, test_ann, class_names).
        device: ``cpu`` or ``cuda[:N]``; on CPU loaders run in-process without pinned memory.
        load_from: local path of the base model checkpoint (required when the config fine-tunes).
        resume_from: local path of this run's last checkpoint; resumes optimizer, schedulers and epoch.
        backbone_checkpoint: local path of the backbone weights the config asks for.
    """
    cfg = restore_types(copy.deepcopy(config_data))
    meta = cfg.get(META_KEY) or {}
    classes = _reconcile_classes(cfg, meta, tuple(prepared.class_names))
    set_classes(cfg, list(classes))
    workers = num_workers if num_workers is not None else (0 if device == "cpu" else 2)
    anns = {
        "train": prepared.train_ann,
        "val": prepared.val_ann,
        "test": prepared.test_ann or prepared.val_ann,
    }
    for split in SPLITS:
        loader = cfg.get(f"{split}_dataloader")
        if not loader:
            continue
        for ds in leaf_datasets(loader["dataset"]):
            ds.update(data_root=str(prepared.image_root), ann_file=str(anns[split]), data_prefix={"img": ""})
        # Train workers are not persistent: mmengine's worker_init_fn then reseeds them alike every epoch,
        # so a resumed attempt draws the same augmentations as an uninterrupted run (resume_state.py).
        persistent = workers > 0 and split != "train"
        loader.update(num_workers=workers, persistent_workers=persistent, pin_memory=device != "cpu")
        evaluator = cfg.get(f"{split}_evaluator")
        if evaluator:
            for ev in evaluator if isinstance(evaluator, list) else [evaluator]:
                ev["ann_file"] = str(anns[split])
    cfg["work_dir"] = str(work_dir)
    cfg["resume"] = resume_from is not None
    cfg["load_from"] = _local_load_from(cfg, meta, load_from, resume_from)
    _fill_backbone(cfg, meta, backbone_checkpoint, resumed=resume_from is not None)
    meta["device"] = device
    cfg[META_KEY] = meta
    gate(cfg, "training_run.resolved_config", "refused before training: ")  # defence in depth
    return Config(cfg)


def _reconcile_classes(
    cfg: dict[str, Any], meta: dict[str, Any], prepared: tuple[str, ...]
) -> tuple[str, ...]:
    wanted = tuple(meta.get("class_names") or ())
    if not wanted:
        return prepared
    if set(wanted) != set(prepared):
        missing, extra = sorted(set(wanted) - set(prepared)), sorted(set(prepared) - set(wanted))
        raise ConfigInvalid(
            [
                FieldViolation(
                    "training_run.class_names",
                    f"do not match the dataset's categories (missing in dataset: {missing[:10]}, "
                    f"not in run: {extra[:10]})",
                )
            ]
        )
    return wanted


def _local_load_from(
    cfg: dict[str, Any], meta: dict[str, Any], load_from: str | Path | None, resume_from: str | Path | None
) -> str | None:
    if resume_from is not None:
        return str(resume_from)
    if meta.get("fine_tune") or cfg.get("load_from"):
        if load_from is None:
            raise ConfigInvalid(
                [FieldViolation("training_run.base_model", "base model checkpoint was not fetched")]
            )
        return str(load_from)
    return str(load_from) if load_from is not None else None


def _fill_backbone(
    cfg: dict[str, Any], meta: dict[str, Any], path: str | Path | None, *, resumed: bool
) -> None:
    backbone = cfg["model"].get("backbone", {})
    init: dict[str, Any] | None = backbone.get("init_cfg")
    if not meta.get("backbone_checkpoint") or not isinstance(init, dict):
        return
    if path is not None:
        init["checkpoint"] = str(path)
    elif resumed:  # the resumed checkpoint holds every weight
        backbone["init_cfg"] = None
    else:
        raise ConfigInvalid([FieldViolation("backbone_checkpoint", "backbone checkpoint was not fetched")])
