"""An attempt's batch size replaces the one resolved at Create; mmengine's auto-scale-LR rule scales LR."""

from __future__ import annotations

from typing import Any

from services.trainer_worker.domain.batch import with_attempt_batch

CONFIG: dict[str, Any] = {
    "train_dataloader": {"batch_size": 8, "num_workers": 0, "dataset": {"type": "CocoDataset"}},
    "optim_wrapper": {"optimizer": {"type": "AdamW", "lr": 0.004}},
    "auto_scale_lr": {"enable": False, "base_batch_size": 8},
}


def test_a_smaller_attempt_batch_replaces_the_configs_and_scales_the_learning_rate_from_it() -> None:
    filled = with_attempt_batch(CONFIG, 4)
    assert filled["train_dataloader"] == {**CONFIG["train_dataloader"], "batch_size": 4}
    assert filled["auto_scale_lr"] == {"enable": True, "base_batch_size": 8}
    assert filled["optim_wrapper"] == CONFIG["optim_wrapper"]  # mmengine scales it: lr * 4 / 8
    assert CONFIG["train_dataloader"]["batch_size"] == 8  # the job's config is not changed


def test_the_runs_own_batch_or_none_leaves_the_config_as_it_is() -> None:
    assert with_attempt_batch(CONFIG, 8) is CONFIG
    assert with_attempt_batch(CONFIG, None) is CONFIG


def test_a_config_already_scaling_keeps_the_templates_base_batch() -> None:
    """auto_scale_lr on (from the template's base 16): lr * 4 / 16 = (lr * 8 / 16) * 4 / 8, the halving
    training_run recorded for the attempt."""
    scaled = {**CONFIG, "auto_scale_lr": {"enable": True, "base_batch_size": 16}}
    filled = with_attempt_batch(scaled, 4)
    assert filled["auto_scale_lr"] == {"enable": True, "base_batch_size": 16}
    assert filled["train_dataloader"]["batch_size"] == 4
