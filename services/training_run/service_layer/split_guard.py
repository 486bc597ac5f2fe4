"""Fine-tune guard: a run on a dataset version must not validate or test on images its base model trained on.

The base model's training run recorded the content sha256 of its training images in its split manifest
(``train_sha256``, the model's SPLIT_MANIFEST artifact); the version's val and test images come from its
split manifest (``file_names``) and file manifest (path -> sha256). Any overlap would inflate the run's val
and test metrics, so Create refuses it unless the request says ``allow_split_overlap``. A base model trained
on the same version shares its split and is never refused; one whose run recorded no training hashes
(imported, or trained before they were recorded) can't be checked and is let through.

A run on a plain dataset reference trains on its implicit version: checked at Create when that version is
READY, else when it becomes READY (``RunSpec.split_guard`` keeps what the check needs of the base model, and
the waiting run ends FAILED with the guard's message instead of being queued).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from common.artifacts import ArtifactStore
from common.errors import FailedPrecondition, NotFound
from services.training_run.adapters.trained_models import BaseModelInfo
from services.training_run.domain.datasets import RunInput
from services.training_run.domain.spec import BaseSplit

HELD_OUT = ("val", "test")


class SplitOverlap(FailedPrecondition):
    """The base model trained on images the run would validate or test on."""


def base_split(base: BaseModelInfo) -> BaseSplit:
    return BaseSplit(base.name, base.dataset, base.split_manifest_key)


def check_split_overlap(store: ArtifactStore, base: BaseSplit, version: RunInput) -> None:
    """Raises SplitOverlap naming how many images overlap. Blocking (artifact reads): run it in a thread."""
    if base.dataset == version.name or not base.split_manifest:
        return
    trained_on = set(_json(store, base.split_manifest).get("train_sha256") or ())
    if not trained_on:
        return
    held_out = _held_out_hashes(store, version.source)
    overlap = trained_on & held_out
    if overlap:
        raise SplitOverlap(
            f"{base.model} was trained on {len(overlap)} image(s) that are in the val or test split of "
            f"{version.name} (compared by content sha256): the run's validation would be inflated. Choose a "
            "base model trained on this version, or set allow_split_overlap to accept it"
        )


async def split_overlap(store: ArtifactStore, base: BaseSplit, version: RunInput) -> str:
    """The guard's refusal of ``version`` for a run fine-tuning ``base`` ('' when it passes); reads in a
    thread."""
    try:
        await asyncio.to_thread(check_split_overlap, store, base, version)
    except SplitOverlap as refused:
        return refused.message
    return ""


def _held_out_hashes(store: ArtifactStore, source: dict[str, Any]) -> set[str]:
    file_names = _json(store, source["split_manifest"]["uri"]).get("file_names") or {}
    files = {e["path"]: e["sha256"] for e in _json(store, source["file_manifest"]["uri"], as_list=True)}
    return {files[n] for split in HELD_OUT for n in file_names.get(split, ()) if n in files}


def _json(store: ArtifactStore, key: str, *, as_list: bool = False) -> Any:
    try:
        data = json.loads(store.read_bytes(key))
    except (NotFound, ValueError):
        return [] if as_list else {}
    return data
