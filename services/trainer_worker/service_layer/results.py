"""Plain conversions between the training pieces' results and the protobuf messages the worker publishes.

No I/O: progress DTOs → ``ProgressSnapshot``, metrics JSON → ``EvaluationResults``, outcomes and exceptions →
classified ``Failure``s.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
from collections.abc import Mapping
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from common.failures import is_out_of_memory
from common.mmdet_config import ConfigInvalid
from common.proto.raven.v1 import types_pb2
from services.trainer_worker.domain.outcome import Failure, Progress
from services.trainer_worker.domain.problems import DatasetInvalid
from services.trainer_worker.domain.split import SplitFractions

COCO_FIELDS = {
    "bbox_mAP": "bbox_map",
    "bbox_mAP_50": "bbox_map_50",
    "bbox_mAP_75": "bbox_map_75",
    "bbox_mAP_s": "bbox_map_s",
    "bbox_mAP_m": "bbox_map_m",
    "bbox_mAP_l": "bbox_map_l",
}


class StepFailed(Exception):
    """A step ended with an already classified failure (e.g. the training child reported one)."""

    def __init__(self, failure: types_pb2.Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def split_fractions(hp: types_pb2.Hyperparameters) -> SplitFractions:
    """The job's split; zero fields mean the 70/20/10 default."""
    if not hp.train_fraction and not hp.val_fraction:
        return SplitFractions()
    train = hp.train_fraction or SplitFractions().train
    val = hp.val_fraction or SplitFractions().val
    return SplitFractions(train=train, val=val, test=max(0.0, round(1.0 - train - val, 9)))


def progress_snapshot(progress: Progress) -> types_pb2.ProgressSnapshot:
    snapshot = types_pb2.ProgressSnapshot(
        phase=types_pb2.RunPhase.Value(progress.phase.value),
        epoch=progress.epoch,
        max_epochs=progress.max_epochs,
        iter=progress.iter,
        max_iters=progress.max_iters,
        losses=[types_pb2.Loss(name=k, value=v) for k, v in progress.losses.items() if math.isfinite(v)],
        learning_rate=progress.lr,
        eta=Duration(seconds=int(max(0.0, progress.eta_seconds))),
        val_metrics=[
            types_pb2.MetricValue(name=k, value=v)
            for k, v in progress.val_metrics.items()
            if math.isfinite(v)
        ],
    )
    if progress.time:
        stamp = Timestamp()
        stamp.FromNanoseconds(int(progress.time * 1e9))
        snapshot.update_time.CopyFrom(stamp)
    return snapshot


def detection_metrics(values: Mapping[str, Any] | None) -> types_pb2.DetectionMetrics | None:
    if not values:
        return None
    out = types_pb2.DetectionMetrics()
    for key, name in COCO_FIELDS.items():
        setattr(out, name, _number(values.get(key)))
    thresholds = values.get("recommended_score_threshold") or {}  # the test split's analysis only
    for name, ap in (values.get("per_class_ap") or {}).items():
        item = types_pb2.ClassAP(class_name=str(name), ap=_number(ap))
        if name in thresholds:
            item.recommended_score_threshold = _number(thresholds[name], -1.0)
        out.per_class_ap.append(item)
    return out


def evaluation_results(metrics: Mapping[str, Any]) -> types_pb2.EvaluationResults:
    """The evaluation's metrics JSON (``val``, ``test``, ``best_epoch``, ``history``) as the proto."""
    results = types_pb2.EvaluationResults(best_epoch=int(metrics.get("best_epoch") or 0))
    val = detection_metrics(metrics.get("val"))
    if val is not None:
        results.val.CopyFrom(val)
    test = detection_metrics(metrics.get("test"))
    if test is not None:
        results.test.CopyFrom(test)
    for entry in metrics.get("history") or []:
        results.history.append(
            types_pb2.EpochMetrics(
                epoch=int(entry.get("epoch", 0)),
                bbox_map=_number(entry.get("bbox_mAP"), -1.0),
                bbox_map_50=_number(entry.get("bbox_mAP_50"), -1.0),
                train_loss=_number(entry.get("train_loss")),
            )
        )
    return results


def average_loss(metrics: Mapping[str, Any]) -> float:
    """Mean training loss of the last epoch that has one (0 when none was logged)."""
    losses = [e["train_loss"] for e in metrics.get("history") or [] if _finite(e.get("train_loss"))]
    return float(losses[-1]) if losses else 0.0


def base_learning_rate(config: Mapping[str, Any], hp: types_pb2.Hyperparameters) -> float:
    optimizer = (
        ((config.get("optim_wrapper") or {}).get("optimizer") or {}) if isinstance(config, Mapping) else {}
    )
    lr = optimizer.get("lr") if isinstance(optimizer, Mapping) else None
    return _number(lr, float(hp.learning_rate))


def framework_versions(device: str, reported: Mapping[str, str] | None = None) -> types_pb2.FrameworkVersions:
    """Versions the training child reported, else those installed here (without importing them)."""
    if reported:
        return types_pb2.FrameworkVersions(**{k: str(v) for k, v in reported.items() if k in _VERSION_FIELDS})

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return ""

    return types_pb2.FrameworkVersions(
        torch=version("torch"), mmcv=version("mmcv") or version("mmcv-lite"), mmdet=version("mmdet"),
        mmengine=version("mmengine"), python=platform.python_version(), device=device,
    )  # fmt: skip


_VERSION_FIELDS = {"torch", "mmcv", "mmdet", "mmengine", "python", "device"}


def failure_proto(failure: Failure) -> types_pb2.Failure:
    """The training pieces' ``Failure`` (same kind names as the proto enum) as the proto."""
    return types_pb2.Failure(
        kind=types_pb2.FailureKind.Value(failure.kind.value), message=failure.message, details=failure.details
    )


def classify_failure(exc: BaseException) -> types_pb2.Failure:
    """Maps an exception from any step to a classified, actionable failure."""
    if isinstance(exc, StepFailed):
        return exc.failure
    if isinstance(exc, DatasetInvalid):
        return types_pb2.Failure(kind=types_pb2.INVALID_DATASET, message=exc.message, details=exc.details)
    if isinstance(exc, ConfigInvalid):
        return types_pb2.Failure(
            kind=types_pb2.INVALID_CONFIG,
            message=f"the training config is invalid: {exc}; fix the run's template or hyperparameters",
            details=[f"{v.field}: {v.description}" for v in getattr(exc, "violations", [])],
        )
    if is_out_of_memory(exc):
        return types_pb2.Failure(
            kind=types_pb2.OUT_OF_MEMORY,
            message=f"training ran out of memory ({exc}); lower batch_size or image_size and retry",
        )
    return types_pb2.Failure(
        kind=types_pb2.INTERNAL_ERROR,
        message=f"internal worker error: {type(exc).__name__}: {exc}; retry the run; report it if it repeats",
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any, default: float = 0.0) -> float:
    return float(value) if _finite(value) else default
