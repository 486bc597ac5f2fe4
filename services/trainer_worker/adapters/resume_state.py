"""What a resumed attempt needs, beyond mmengine's checkpoint, to continue exactly like an uninterrupted run.

mmengine's checkpoint holds the weights, optimizer, schedulers, EMA and message hub, but not

- the RNG states (Python ``random``, NumPy, torch and CUDA): the augmentations (flip, resize, mosaic) and the
  detector's proposal samplers draw from them;
- the train sampler's seed (``DefaultSampler`` orders an epoch by seed + epoch; the checkpoint has the epoch);
- the scalars logged so far: a resumed attempt (on any worker) starts a new log directory, so the run's
  history would start at the resumed epoch.

``ResumeStateHook`` writes them under ``checkpoint["raven_resume"]`` (plain tensors, tuples and numbers: the
checkpoint still loads with ``torch.load(weights_only=True)``) and puts them back on resume.

Timing matters: ``epoch_k.pth`` is written in ``after_train_epoch``, before epoch k is validated, and the
validation draws from torch's RNG (the loader's base seed). So every train epoch starts from the state
recorded when the previous epoch's last iteration ended, in an uninterrupted run as in a resumed one
(captured in that ``after_train_iter``, before the CheckpointHook saves; put back in ``before_train_epoch``).
And because the checkpoint predates its epoch's validation, a resumed attempt validates that epoch first
when the carried history lacks it (in ``before_train``, after the CheckpointHook's: the hook has the lowest
priority): the same weights give the same numbers, so the run's history and best checkpoint cover it too.

A distributed attempt (``distributed_launch``): each rank's augmentations draw from its own RNG, so every
rank's state is gathered where it is captured (a collective at the same point on every rank) and rank 0, which
alone saves checkpoints, stores them all (``rng_by_rank``); on resume each rank takes its own back (rank 0's
when the checkpoint came from another world size).

Data loader workers (GPU only; CPU loads in-process): mmengine's ``worker_init_fn`` seeds each worker from the
run's seed and its worker id. With ``persistent_workers`` a worker's RNG would run on across epochs and a
resumed attempt would restart it, so the train loader's workers are not persistent (``common.mmdet_fill``):
every epoch reseeds them the same way, resumed or not.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook

from services.trainer_worker.adapters.evaluation import CARRIED_SCALARS, read_scalars

KEY = "raven_resume"


def capture_rng() -> dict[str, Any]:
    """The RNG states of this process, in types a weights-only ``torch.load`` accepts."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                  float(gauss)),
        "torch": torch.get_rng_state(),
    }  # fmt: skip
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def rank_states(state: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Every rank's ``state`` in rank order when this process is one rank of several (a collective: all ranks
    call it at the same point), else None."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, state)
    return gathered


def own_rank_state(state: dict[str, Any]) -> dict[str, Any]:
    """This rank's RNG state from a checkpoint's ``raven_resume`` entry (rank 0's when it has none for us)."""
    import torch.distributed as dist

    ranks = state.get("rng_by_rank")
    if ranks and dist.is_available() and dist.is_initialized() and len(ranks) == dist.get_world_size():
        return dict(ranks[dist.get_rank()])
    return dict(state["rng"])


def scalars_up_to(records: list[dict[str, Any]], epochs: int) -> list[dict[str, Any]]:
    """The scalars logged in the first ``epochs`` epochs: train records by ``epoch``, val ones by ``step``."""
    kept = []
    for record in records:
        epoch = record.get("epoch") if "epoch" in record else record.get("step")
        if isinstance(epoch, int | float) and epoch <= epochs:
            kept.append(record)
    return kept


class ResumeStateHook(Hook):
    """Saves and restores RNG states, the sampler seed and the logged scalars (see the module docstring).

    Args:
        resuming: this runner resumes a run (``cfg.resume``); loading a base model restores nothing.
    """

    priority = "LOWEST"  # before_train after the CheckpointHook's and the ProgressHook's (register it last)

    def __init__(self, resuming: bool) -> None:
        self.resuming = resuming
        self._epoch_state: dict[str, Any] | None = None  # the RNG state the next train epoch starts from
        self._rank_states: list[dict[str, Any]] | None = None  # every rank's, in a distributed attempt
        self._carried: list[dict[str, Any]] = []
        self._validate_first = False

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        state = checkpoint.get(KEY)
        if not self.resuming or not isinstance(state, dict):
            return
        self._epoch_state = own_rank_state(state)
        sampler = runner.train_dataloader.sampler
        if state.get("sampler_seed") is not None and hasattr(sampler, "seed"):
            sampler.seed = int(state["sampler_seed"])
        epochs = int((checkpoint.get("meta") or {}).get("epoch", 0))
        self._carried = scalars_up_to(list(state.get("scalars") or []), epochs)
        carried = Path(runner.log_dir) / CARRIED_SCALARS
        carried.write_text("".join(json.dumps(r) + "\n" for r in self._carried))
        validated = any("step" in r and "epoch" not in r and r["step"] == epochs for r in self._carried)
        self._validate_first = epochs > 0 and not validated

    def before_train(self, runner: Any) -> None:
        loop = runner.train_loop
        if self._validate_first and runner.val_loop is not None and _validates(loop, loop.epoch):
            runner.val_loop.run()  # the checkpoint was written before this epoch's validation
        self._validate_first = False

    def before_train_epoch(self, runner: Any) -> None:
        if self._epoch_state is not None:
            restore_rng(self._epoch_state)
        else:
            self._epoch_state = capture_rng()
        self._rank_states = rank_states(self._epoch_state)

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: dict | None = None
    ) -> None:
        if self.end_of_epoch(runner.train_dataloader, batch_idx):
            self._epoch_state = capture_rng()  # before after_train_epoch, where the checkpoint is saved
            self._rank_states = rank_states(self._epoch_state)  # rank 0 alone saves: it keeps them all

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        epochs = int(checkpoint["meta"]["epoch"])
        logged = read_scalars(Path(runner.log_dir) / "vis_data" / "scalars.json")
        checkpoint[KEY] = {
            "rng": self._epoch_state if self._epoch_state is not None else capture_rng(),
            **({"rng_by_rank": self._rank_states} if self._rank_states else {}),
            "sampler_seed": getattr(runner.train_dataloader.sampler, "seed", None),
            "scalars": scalars_up_to(self._carried + logged, epochs),
        }


def _validates(loop: Any, epoch: int) -> bool:
    """mmengine's EpochBasedTrainLoop rule for validating after ``epoch``."""
    interval = getattr(loop, "val_interval", 1)
    return epoch >= max(1, getattr(loop, "val_begin", 1)) and (
        epoch % interval == 0 or epoch == loop.max_epochs
    )
