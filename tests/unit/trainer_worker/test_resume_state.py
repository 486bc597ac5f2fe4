"""The resume state in a checkpoint: RNG states that survive a weights-only load, scalars cut at its epoch."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from common.checkpoint_safety import load_untrusted_checkpoint
from services.trainer_worker.adapters.resume_state import KEY, capture_rng, restore_rng, scalars_up_to


def draws() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # a cached Gaussian is part of NumPy's state
    state = capture_rng()
    expected = draws()
    carried = {"rng": state, "sampler_seed": 7, "scalars": [{"loss": 1.5, "epoch": 1}]}
    torch.save({KEY: carried}, tmp_path / "c.pth")
    draws()  # move every generator on

    loaded = load_untrusted_checkpoint(tmp_path / "c.pth")[KEY]
    restore_rng(loaded["rng"])

    assert draws() == expected
    assert loaded["sampler_seed"] == 7 and loaded["scalars"] == [{"loss": 1.5, "epoch": 1}]


def test_scalars_are_cut_at_the_checkpoints_epoch() -> None:
    records = [
        {"loss": 2.0, "epoch": 1, "iter": 5, "step": 5},
        {"coco/bbox_mAP": 0.1, "step": 1},
        {"loss": 1.0, "epoch": 2, "iter": 7, "step": 7},  # an unfinished epoch 2: trained again on resume
        {"coco/bbox_mAP": 0.2, "step": 2},
    ]
    assert scalars_up_to(records, 1) == records[:2]
    assert scalars_up_to(records, 2) == records
