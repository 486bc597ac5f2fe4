"""Template listing = Create's checks; queue depth per capability; worker info."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.hyperparameters import (
    EARLY_STOPPING_LIMITS,
    FIELDS,
    RUN_LIMITS,
    HyperParams,
    Limit,
    limits_for,
    validate_request,
)
from common.mmdet_templates import TEMPLATES
from common.tiling import TILING_LIMITS
from services.training_run.adapters.discovery_mapping import template_to_proto
from services.training_run.adapters.proto_mapping import hyperparameters_from_proto
from services.training_run.domain.workers import SeenWorker, WorkerInfo, queue_depths

NOW = datetime(2026, 12, 2, tzinfo=UTC)


@pytest.mark.parametrize("pretrained", [True, False], ids=["pretrained", "random-init"])
@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_listed_ranges_are_the_ones_create_checks(key: str, pretrained: bool) -> None:
    template = TEMPLATES[key]
    listed = template_to_proto(template, pretrained)
    limits = limits_for(template, pretrained=pretrained)
    ranges = {r.field: r for r in listed.ranges}
    nested = [f"early_stopping.{lim.field}" for lim in EARLY_STOPPING_LIMITS]
    nested += [f"tiling.{lim.field}" for lim in TILING_LIMITS]
    assert [r.field for r in listed.ranges] == [lim.field for lim in (*limits, *RUN_LIMITS)] + nested
    assert ranges["early_stopping.patience"].min == 0 and not ranges["early_stopping.min_delta"].integer
    assert ranges["frozen_stages"].max == (template.max_frozen_stages if pretrained else -1)
    # Every listed default passes validation when sent back as it is.
    defaults = listed.default_hyperparameters
    asked = validate_request(hyperparameters_from_proto(defaults), template, pretrained=pretrained)
    assert asked.violations == []
    # every default is listed as set; early stopping and tiling are off by default, so they are not
    assert set(hyperparameters_from_proto(defaults)) == set(FIELDS) - {"early_stopping", "tiling"}
    # One past each bound is refused, by the field the range names.
    for limit in limits:
        if limit.integer and limit.field != "val_interval":
            too_high = HyperParams(**{limit.field: int(limit.high) + 1})
            fields = {v.field for v in too_high.validate(template, pretrained=pretrained)}
            assert f"training_run.hyperparameters.{limit.field}" in fields, limit


def test_limit_messages_are_actionable() -> None:
    assert Limit("batch_size", 1, 64).problem(999) == "must be between 1 and 64, got 999"
    assert Limit("batch_size", 1, 64).problem(2.5) == "must be an integer, got 2.5"
    assert Limit("seed", 0, 2**31 - 1).problem(-1) == "must be between 0 and 2147483647, got -1"
    lr = Limit("learning_rate", 0, 1, integer=False, low_exclusive=True)
    assert lr.problem(0) == "must be a number in (0, 1], got 0" and lr.problem(1) is None
    assert lr.problem(float("nan")) is not None and lr.problem(True) is not None
    size = Limit("image_size", 64, 2048, multiple_of=32, note="the largest feature stride")
    assert size.problem(100) == "must be a multiple of 32 (the largest feature stride), got 100"


def worker(worker_id: str, info: WorkerInfo, runs: int) -> SeenWorker:
    return SeenWorker(worker_id, info, NOW, NOW, [f"r{i}" for i in range(runs)])


def test_queue_depth_per_capability() -> None:
    gpu = worker("g", WorkerInfo("cuda", "H100", 2, 2), runs=1)
    cpu = worker("c", WorkerInfo("cpu", slots=3), runs=5)  # more runs than slots: none free, never negative
    depths = {
        d.capability: d
        for d in queue_depths(
            [gpu, cpu], {"faster_rcnn_r50_fpn": 4, "rtmdet_tiny": 2}, {"faster_rcnn_r50_fpn"}
        )
    }
    assert (depths["gpu"].pending_training_runs, depths["gpu"].workers, depths["gpu"].free_slots) == (4, 1, 1)
    assert (depths["any"].pending_training_runs, depths["any"].workers, depths["any"].free_slots) == (2, 2, 1)


def test_a_call_without_device_info_keeps_what_the_worker_said_before() -> None:
    seen = worker("g", WorkerInfo("cuda", "H100", 1, 1), runs=0)
    seen.seen_again(WorkerInfo(), NOW.replace(hour=1))
    assert seen.info.gpu_model == "H100" and seen.last_seen_time.hour == 1


def test_bad_worker_info_names_each_field() -> None:
    fields = {v.field for v in WorkerInfo("tpu", "x" * 300, -1, 10_000, 9).violations()}
    assert fields == {
        "worker.device_kind", "worker.gpu_model", "worker.gpu_count", "worker.slots", "worker.gpus_per_run"
    }  # fmt: skip
    assert WorkerInfo("cuda", "H100", 8, 2, 4).violations() == []
