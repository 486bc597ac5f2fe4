"""A job's steps as separate functions with plain inputs and outputs: prepare, train, evaluate, upload.

``JobSteps`` calls the pieces other modules own (``adapters/dataset_source.prepare_dataset``,
``common.mmdet_config.fill_dataset``, ``adapters/training``, ``adapters/evaluation``); ``job_runner.py``
decides when each runs. ``classify_failure`` turns whatever a step raised into the ``Failure`` a person can
act on.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from common.artifacts import ArtifactStore
from common.proto.raven.v1 import events_pb2, types_pb2
from services.trainer_worker.domain.dataset import DatasetInvalid, PreparedDataset, SplitFractions
from services.trainer_worker.domain.job import artifact_key

if TYPE_CHECKING:
    from services.trainer_worker.entrypoints.job_runner import JobContext


@dataclass
class Trained:
    """What a finished training leaves behind, in the worker's terms."""

    best_checkpoint: Path
    config_path: Path  # the final config as run (mmengine's dump)
    config_text: str
    config_data: dict[str, Any]
    log_path: Path | None
    seconds: float
    epochs: int
    learning_rate: float = 0.0
    average_loss: float = 0.0
    parameter_count: int = 0
    history: list[types_pb2.EpochMetrics] = field(default_factory=list)
    best_epoch: int = 0


@dataclass
class Evaluated:
    results: types_pb2.EvaluationResults
    metrics_path: Path  # metrics JSON (COCO keys, per-class AP, per-epoch history)
    curves_path: Path | None  # training curves PNG


def split_fractions(hp: types_pb2.Hyperparameters) -> SplitFractions:
    """The job's split; zero fields mean the 70/20/10 default."""
    if not hp.train_fraction and not hp.val_fraction:
        return SplitFractions()
    train = hp.train_fraction or SplitFractions().train
    val = hp.val_fraction or SplitFractions().val
    return SplitFractions(train=train, val=val, test=max(0.0, round(1.0 - train - val, 9)))


def framework_versions(device: str) -> types_pb2.FrameworkVersions:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return ""

    return types_pb2.FrameworkVersions(
        torch=version("torch"),
        mmcv=version("mmcv") or version("mmcv-lite"),
        mmdet=version("mmdet"),
        mmengine=version("mmengine"),
        python=platform.python_version(),
        device=device,
    )


class JobSteps:
    """The production steps; tests subclass it to replace the slow ones."""

    def __init__(
        self,
        *,
        artifacts: ArtifactStore,
        dataset_root: str,
        backbone_checkpoint: str = "",
        cancel_grace_seconds: float = 30.0,
    ) -> None:
        self.artifacts = artifacts
        self.dataset_root = dataset_root
        self.backbone_checkpoint = backbone_checkpoint
        self.cancel_grace_seconds = cancel_grace_seconds

    async def prepare(self, ctx: JobContext) -> PreparedDataset:
        from services.trainer_worker.adapters.dataset_source import prepare_dataset

        hp = ctx.job.hyperparameters
        return await asyncio.to_thread(
            prepare_dataset,
            self.dataset_root,
            ctx.job.dataset,
            ctx.work_dir / "data",
            seed=int(hp.seed),
            fractions=split_fractions(hp),
            class_names=list(ctx.job.class_names) or None,
        )

    async def train(self, ctx: JobContext, prepared: PreparedDataset) -> Trained | None:
        """Trains in a child process; returns None when a stop request ended it early."""
        raise NotImplementedError(
            "the training adapter (services/trainer_worker/adapters/training.py) is missing"
        )

    async def evaluate(self, ctx: JobContext, prepared: PreparedDataset, trained: Trained) -> Evaluated:
        raise NotImplementedError(
            "the evaluation adapter (services/trainer_worker/adapters/evaluation.py) is missing"
        )

    async def upload(
        self,
        ctx: JobContext,
        prepared: PreparedDataset,
        trained: Trained,
        evaluated: Evaluated,
        seconds: float,
    ) -> events_pb2.RunCompleted:
        """Stores the results (sha256 each) and builds the completed event's payload."""
        files: list[tuple[types_pb2.ArtifactKind, Path]] = [
            (types_pb2.CHECKPOINT, trained.best_checkpoint),
            (types_pb2.CONFIG, trained.config_path),
            (types_pb2.METRICS, evaluated.metrics_path),
            (types_pb2.SPLIT_MANIFEST, prepared.manifest_path),
        ]
        if trained.log_path is not None and trained.log_path.is_file():
            files.append((types_pb2.LOG, trained.log_path))
        if evaluated.curves_path is not None and evaluated.curves_path.is_file():
            files.append((types_pb2.CURVES, evaluated.curves_path))
        artifacts = await asyncio.to_thread(self._put_all, ctx.run_id, ctx.lease.attempt, files)
        return self.completed_payload(ctx, prepared, trained, evaluated, artifacts, seconds)

    def _put_all(
        self, run_id: str, attempt: int, files: list[tuple[types_pb2.ArtifactKind, Path]]
    ) -> list[types_pb2.Artifact]:
        stored = []
        for kind, path in files:
            item = self.artifacts.put_file(artifact_key(run_id, attempt, path.name), path)
            stored.append(
                types_pb2.Artifact(kind=kind, uri=item.key, size_bytes=item.size_bytes, sha256=item.sha256)
            )
        return stored

    @staticmethod
    def completed_payload(
        ctx: JobContext,
        prepared: PreparedDataset,
        trained: Trained,
        evaluated: Evaluated,
        artifacts: list[types_pb2.Artifact],
        seconds: float,
    ) -> events_pb2.RunCompleted:
        job = ctx.job
        payload = events_pb2.RunCompleted(
            artifacts=artifacts,
            evaluation=evaluated.results,
            dataset_snapshot_sha256=prepared.snapshot_sha256,
            config_sha256=job.config_sha256,
            config_text=trained.config_text,
            versions=framework_versions(ctx.device),
            seed=int(job.hyperparameters.seed),
            training_seconds=trained.seconds or seconds,
            parameter_count=trained.parameter_count,
            epochs=trained.epochs,
            learning_rate=trained.learning_rate,
            average_loss=trained.average_loss,
            class_names=list(prepared.class_names),
            model_template=job.model_template,
            dataset=job.dataset,
            base_model_id=job.base_model_id,
            owner=job.owner,
            display_name=ctx.lease.training_run.display_name,
        )
        json_format.ParseDict(_plain(trained.config_data), payload.config)
        return payload


def _plain(value: Any) -> Any:
    """JSON-safe copy of config data for a ``Struct`` (tuples → lists, other leaves → str)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def classify_failure(exc: BaseException) -> types_pb2.Failure:
    """Maps an exception from any step to a classified, actionable failure."""
    if isinstance(exc, DatasetInvalid):
        return types_pb2.Failure(kind=types_pb2.INVALID_DATASET, message=exc.message, details=exc.details)
    config_invalid = _config_invalid_type()
    if config_invalid is not None and isinstance(exc, config_invalid):
        return types_pb2.Failure(
            kind=types_pb2.INVALID_CONFIG,
            message=f"the training config is invalid: {exc}; fix the run's template or hyperparameters",
            details=[f"{v.field}: {v.description}" for v in getattr(exc, "violations", [])],
        )
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return types_pb2.Failure(
            kind=types_pb2.OUT_OF_MEMORY,
            message=f"training ran out of memory ({exc}); lower batch_size or image_size and retry",
        )
    return types_pb2.Failure(
        kind=types_pb2.INTERNAL_ERROR,
        message=f"internal worker error: {type(exc).__name__}: {exc}; retry the run; report it if it repeats",
    )


def _config_invalid_type() -> type[BaseException] | None:
    try:
        from common.mmdet_config import ConfigInvalid
    except Exception:
        return None
    return ConfigInvalid
