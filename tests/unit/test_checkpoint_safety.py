"""Untrusted checkpoints: mmengine resume state loads with weights_only=True; code in a pickle never runs."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from common.checkpoint_safety import UnsafeCheckpoint, install_safe_globals, load_untrusted_checkpoint


class RunsCode:
    """Unpickling this calls os.system: what a hostile checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


class SneakyGetattr:
    """Asks for getattr on an allowed class to reach something else than its statistics methods."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (getattr, (HistoryBuffer, "__init__"))


def mmengine_like_checkpoint(tmp_path: Path) -> Path:
    hub = MessageHub.get_instance(f"test-{tmp_path.name}")
    for step in range(3):
        hub.update_scalar("train/loss", 1.0 / (step + 1))
        hub.update_scalar("coco/bbox_mAP", np.float64(0.25 * step))
    hub.update_info("epoch", 2)
    checkpoint = {
        "meta": {
            "epoch": 2,
            "iter": 10,
            "seed": 0,
            "dataset_meta": {"classes": ("bottle", "tire"), "palette": [(1, 2, 3), (4, 5, 6)]},
            "hook_msgs": {"best_score": np.float64(0.5), "last_ckpt": "/w/epoch_2.pth"},
            "message_hub": hub.state_dict(),
        },
        "state_dict": OrderedDict(weight=torch.ones(2, 2)),
        "optimizer": torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1).state_dict(),
        "param_schedulers": [{"base_values": [0.1], "last_step": 10}],
        "extra": np.arange(4, dtype=np.int32),
    }
    path = tmp_path / "epoch_2.pth"
    torch.save(checkpoint, path)
    return path


def test_mmengine_resume_state_needs_the_allowlist_and_loads_with_it(tmp_path: Path) -> None:
    path = mmengine_like_checkpoint(tmp_path)
    # Another test may already have installed the allowlist process-wide; ask torch with an empty one.
    installed = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    finally:
        torch.serialization.add_safe_globals(installed)
    assert "mmengine.logging.history_buffer.HistoryBuffer" in needed and "builtins.getattr" in needed

    checkpoint = load_untrusted_checkpoint(path)

    buffer = checkpoint["meta"]["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(buffer, HistoryBuffer) and buffer.current() == pytest.approx(1 / 3)
    assert buffer.mean() == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert checkpoint["meta"]["hook_msgs"]["best_score"] == 0.5
    assert checkpoint["extra"].tolist() == [0, 1, 2, 3]
    # What mmengine's CheckpointLoader does (torch.load with the default weights_only=True) works too.
    install_safe_globals()
    install_safe_globals()  # idempotent
    assert torch.load(path, map_location="cpu")["meta"]["epoch"] == 2


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": {"payload": RunsCode(marker)}}, path)

    with pytest.raises(UnsafeCheckpoint, match="system"):
        load_untrusted_checkpoint(path)
    install_safe_globals()
    with pytest.raises(Exception, match="system"):
        torch.load(path, map_location="cpu")  # the mmengine path refuses it too
    assert not marker.exists()


def test_getattr_is_only_allowed_for_history_buffer_statistics(tmp_path: Path) -> None:
    path = tmp_path / "sneaky.pth"
    torch.save({"meta": {"x": SneakyGetattr()}}, path)
    with pytest.raises(UnsafeCheckpoint, match="__init__"):
        load_untrusted_checkpoint(path)


def test_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a zip nor a pickle")
    with pytest.raises(UnsafeCheckpoint):
        load_untrusted_checkpoint(garbage)
    tensor_only = tmp_path / "tensor.pth"
    torch.save(torch.zeros(1), tensor_only)
    with pytest.raises(UnsafeCheckpoint, match="not a dict"):
        load_untrusted_checkpoint(tensor_only)
