"""Issue 17: precision (FP32 / AMP_FP16 / AMP_BF16) and auto_scale_lr in the config built at Create, the
CPU worker's refusal of AMP, and the effective learning rate (pure)."""

from __future__ import annotations

import pytest

from common.hyperparameters import HyperParams, validate_request
from common.mmdet_config import build_config
from common.mmdet_templates import TEMPLATES
from common.precision import (
    apply_precision,
    device_problem,
    effective_learning_rate,
    precision_problem,
)
from common.proto.raven.v1 import types_pb2
from services.training_run.adapters.proto_mapping import hyperparameters_from_proto


def test_amp_wraps_the_optimizer_and_fp32_keeps_or_restores_the_plain_one() -> None:
    fp16 = build_config("rtmdet_tiny", [], HyperParams(precision=types_pb2.AMP_FP16)).data["optim_wrapper"]
    assert (
        fp16["type"] == "AmpOptimWrapper" and fp16["dtype"] == "float16" and fp16["loss_scale"] == "dynamic"
    )
    assert fp16["optimizer"]["type"] == "AdamW"  # the template's optimizer and its settings stay
    bf16 = build_config("rtmdet_tiny", [], HyperParams(precision=types_pb2.AMP_BF16)).data["optim_wrapper"]
    assert bf16["type"] == "AmpOptimWrapper" and bf16["dtype"] == "bfloat16"
    plain = build_config("rtmdet_tiny", [], HyperParams()).data["optim_wrapper"]
    assert plain["type"] == "OptimWrapper" and "dtype" not in plain and "loss_scale" not in plain
    stored = {"optim_wrapper": {"type": "AmpOptimWrapper", "dtype": "float16", "loss_scale": 512, "x": 1}}
    apply_precision(stored, types_pb2.FP32)  # a base model trained with AMP, fine-tuned in FP32
    assert stored["optim_wrapper"] == {"type": "OptimWrapper", "x": 1}


def test_auto_scale_lr_is_on_by_default_from_the_templates_base_batch() -> None:
    tiny = TEMPLATES["rtmdet_tiny"]
    on = build_config("rtmdet_tiny", [], HyperParams(batch_size=8)).data
    assert on["auto_scale_lr"] == {"enable": True, "base_batch_size": tiny.defaults.batch_size}
    assert on["optim_wrapper"]["optimizer"]["lr"] == tiny.defaults.learning_rate  # MMEngine scales it
    off = build_config("rtmdet_tiny", [], HyperParams(batch_size=8, auto_scale_lr=False)).data
    assert off["auto_scale_lr"]["enable"] is False
    assert effective_learning_rate(0.004, 8, 1, 4, True) == pytest.approx(0.008)
    assert effective_learning_rate(0.004, 8, 2, 4, True) == pytest.approx(0.016)  # gpus x batch
    assert effective_learning_rate(0.004, 8, 2, 4, False) == 0.004


def test_amp_is_refused_on_a_cpu_worker_naming_the_device() -> None:
    problem = device_problem(types_pb2.AMP_BF16, "cpu")
    assert problem is not None and "AMP_BF16 needs a CUDA GPU" in problem and "trains on cpu" in problem
    assert device_problem(types_pb2.AMP_FP16, "cuda:1") is None
    assert device_problem(types_pb2.FP32, "cpu") is None and device_problem(None, "cpu") is None


def test_precision_is_validated_and_travels_as_set() -> None:
    asked = hyperparameters_from_proto(
        types_pb2.Hyperparameters(precision=types_pb2.AMP_FP16, auto_scale_lr=False)
    )
    assert asked == {"precision": types_pb2.AMP_FP16, "auto_scale_lr": False}
    tpl = TEMPLATES["rtmdet_tiny"]
    assert validate_request(asked, tpl, pretrained=False).violations == []
    bad = validate_request({"precision": 7}, tpl, pretrained=False).violations
    assert [(v.field, v.description) for v in bad] == [
        ("training_run.hyperparameters.precision", "must be one of FP32, AMP_FP16, AMP_BF16, got 7")
    ]
    assert precision_problem(None) is None and precision_problem(True) is not None
    defaults = tpl.defaults_for(pretrained=False)
    assert defaults.precision == types_pb2.FP32 and defaults.auto_scale_lr is True
