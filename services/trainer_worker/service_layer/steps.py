"""A training job's steps as separate functions with plain inputs and outputs: prepare, train, evaluate,
upload (and the completed event's payload).

``JobSteps`` calls the pieces other modules own (``adapters/dataset_source.prepare_dataset``,
``common.mmdet_fill.fill_dataset``, ``adapters/training.TrainingProcess`` which trains and then evaluates in
its child process, the artifact store); ``attempt.py`` decides when each runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from common.artifacts import ArtifactStore
from common.config_data import canonical, relative_paths
from common.logging import get_logger
from common.mmdet_config import META_KEY
from common.mmdet_fill import fill_dataset
from common.precision import device_problem
from common.proto.raven.v1 import events_pb2, types_pb2
from services.trainer_worker.adapters import split_analysis
from services.trainer_worker.adapters.dataset_source import prepare_dataset
from services.trainer_worker.adapters.distributed_launch import job_ranks, launch_training
from services.trainer_worker.adapters.tile_cache import TILE_CACHE_DIR, tiled_train, tiling_of
from services.trainer_worker.adapters.training import TrainingProcess, TrainingSpec
from services.trainer_worker.adapters.version_dataset import prepare_version_dataset
from services.trainer_worker.domain.batch import with_attempt_batch
from services.trainer_worker.domain.budget import budget_of
from services.trainer_worker.domain.dataset import PreparedDataset
from services.trainer_worker.domain.job import StopReason, artifact_key
from services.trainer_worker.domain.outcome import Cancelled, Failure, Progress
from services.trainer_worker.service_layer.context import AttemptContext
from services.trainer_worker.service_layer.results import (
    StepFailed,
    average_loss,
    base_learning_rate,
    evaluation_results,
    failure_proto,
    framework_versions,
    progress_snapshot,
    split_fractions,
)

log = get_logger("trainer_worker.steps")

LOG_POLL_SECONDS = 1.0
WEIGHTS_DIR = "weights"
RUN_CONFIG_FILE = "config.json"
IMAGES_LABEL = "images"
# Written beside the metrics by the child's test split analysis (split_analysis.py).
ANALYSIS_FILES: tuple[tuple[int, str], ...] = (
    (types_pb2.PREDICTIONS, split_analysis.PREDICTIONS_FILE),
    (types_pb2.EVALUATION_ANALYSIS, split_analysis.ANALYSIS_FILE),
    (types_pb2.CONFUSION_MATRIX, split_analysis.CONFUSION_FILE),
    (types_pb2.PR_CURVES, split_analysis.PR_CURVES_FILE),
)


@dataclass
class Trained:
    """A finished training (and its evaluation, done in the same child), in the worker's terms."""

    best_checkpoint: Path
    config_path: Path  # the final config as run, JSON data with paths relative to the attempt's work dir
    log_path: Path | None
    seconds: float
    epochs: int
    metrics: dict[str, Any] = field(default_factory=dict)  # the evaluation's metrics JSON content
    metrics_path: Path | None = None
    curves_path: Path | None = None
    parameter_count: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    stopped_early: bool = False  # early stopping ended training at ``epochs``, before the configured count
    stopped_by_time_budget: bool = False  # the run's max_runtime ended training


@dataclass
class Evaluated:
    results: types_pb2.EvaluationResults
    metrics_path: Path  # metrics JSON (COCO keys, per-class AP, per-epoch history)
    curves_path: Path | None  # training curves PNG
    analysis: list[tuple[int, Path]] = field(default_factory=list)  # the test split's analysis files


class JobSteps:
    """The production steps; tests subclass it to replace the slow ones."""

    def __init__(
        self,
        *,
        artifacts: ArtifactStore,
        dataset_root: str,
        cancel_grace_seconds: float = 30.0,
        preemption_grace_seconds: float = 60.0,
        progress_every_iters: int = 10,
        progress_every_seconds: float = 2.0,
        tile_cache: Path | None = None,
        tile_cache_max_bytes: int = 0,
    ) -> None:
        self.artifacts = artifacts
        self.dataset_root = dataset_root
        self.cancel_grace_seconds = cancel_grace_seconds
        self.preemption_grace_seconds = preemption_grace_seconds
        self.progress_every_iters = progress_every_iters
        self.progress_every_seconds = progress_every_seconds
        self.tile_cache = tile_cache  # tiled train splits kept across runs; None: the attempt's scratch
        self.tile_cache_max_bytes = tile_cache_max_bytes  # LRU-trimmed to this after each use; 0 = unbounded

    async def prepare(self, job: events_pb2.TrainingJob, data_dir: Path) -> PreparedDataset:
        """The job's dataset as mmdet-ready COCO files under ``data_dir``: a dataset version's frozen split
        (never re-split), or a plain reference validated, hashed and split by its content."""
        hp = job.hyperparameters
        if job.HasField("dataset_version"):
            prepared = await asyncio.to_thread(
                prepare_version_dataset, self.artifacts, job.dataset_version, data_dir,
                class_names=list(job.class_names) or None,
            )  # fmt: skip
        else:
            prepared = await asyncio.to_thread(
                prepare_dataset, self.dataset_root, job.dataset, data_dir,
                seed=int(hp.seed), fractions=split_fractions(hp), class_names=list(job.class_names) or None,
            )  # fmt: skip
        tiling = tiling_of(hp)
        if tiling is None:
            return prepared
        cache = self.tile_cache or data_dir / TILE_CACHE_DIR
        tiled = await asyncio.to_thread(
            tiled_train, prepared, tiling, int(hp.seed), cache, self.tile_cache_max_bytes
        )
        log.info("train split tiled", run_id=job.run_id, tiles=tiled.tiles, empty=tiled.empty_tiles,
                 cached=tiled.cached, evicted=len(tiled.evicted))  # fmt: skip
        return tiled.prepared

    async def train(self, ctx: AttemptContext, prepared: PreparedDataset) -> Trained | None:
        """Trains and evaluates in a child process; None when a stop request ended it (checkpoint kept).

        ``ctx`` is the live attempt: progress and log lines go to its reporter, its stop request stops the
        child, each epoch's checkpoint is offered for resume at once."""
        hp = ctx.job.hyperparameters
        unsupported = device_problem(hp.precision if hp.HasField("precision") else None, ctx.device)
        if unsupported:  # e.g. AMP on a CPU worker: refused before anything trains
            raise StepFailed(types_pb2.Failure(kind=types_pb2.INVALID_CONFIG, message=unsupported))
        cfg = await self._filled_config(ctx, prepared)
        process = launch_training(
            TrainingSpec(
                config=cfg.to_dict(), work_dir=ctx.train_dir, device=ctx.device,
                has_test=prepared.test_ann is not None, progress_every_iters=self.progress_every_iters,
                progress_every_seconds=self.progress_every_seconds,
                time_budget_seconds=budget_of(ctx.lease.training_run, time.monotonic() - ctx.claimed_at),
            ),
            ranks=job_ranks(ctx.job.hyperparameters),  # one per GPU of the run (CPU: gloo processes)
        )  # fmt: skip
        process.start()
        stopper = asyncio.create_task(self._stop_when_asked(ctx, process))
        tail = asyncio.create_task(_tail_log(process.log_path, ctx.reporter.log))
        try:
            async for progress in process.events():
                await self._forward(ctx, progress)
        finally:
            stopper.cancel()
            process.kill()  # only does something when we leave early (the job task was cancelled)
            await asyncio.sleep(0)
            tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tail
        outcome = process.outcome
        if isinstance(outcome, Cancelled):
            return None
        if isinstance(outcome, Failure):
            raise StepFailed(failure_proto(outcome))
        assert outcome is not None
        config_path = write_run_config(cfg.to_dict(), ctx.train_dir / RUN_CONFIG_FILE, ctx.work_dir, prepared)
        return Trained(
            best_checkpoint=Path(outcome.best_checkpoint), config_path=config_path,
            log_path=Path(outcome.log_path), seconds=outcome.training_seconds, epochs=outcome.epochs,
            metrics=dict(outcome.metrics), metrics_path=Path(outcome.metrics_path),
            curves_path=Path(outcome.curves_path) if outcome.curves_path else None,
            parameter_count=outcome.parameter_count, versions=dict(outcome.versions),
            stopped_early=outcome.stopped_early, stopped_by_time_budget=outcome.stopped_by_time_budget,
        )  # fmt: skip

    async def _filled_config(self, ctx: AttemptContext, prepared: PreparedDataset) -> Any:
        """The job's config with this attempt's dataset paths, work dir and local checkpoints."""
        hp = ctx.job.hyperparameters
        data = with_attempt_batch(
            json_format.MessageToDict(ctx.job.config), hp.batch_size if hp.HasField("batch_size") else None
        )
        meta = data.get(META_KEY) or {}
        resumed = ctx.resume_from is not None
        base_key = ctx.job.base_model_checkpoint or (data.get("load_from") or "")
        load_from = None if resumed or not base_key else await self._fetch(ctx, base_key)
        backbone_key = meta.get("backbone_checkpoint") or ""
        backbone = None if resumed or not backbone_key else await self._fetch(ctx, backbone_key)
        return fill_dataset(
            data, prepared, ctx.train_dir, device=ctx.device, load_from=load_from,
            resume_from=ctx.resume_from, backbone_checkpoint=backbone,
        )  # fmt: skip

    async def _fetch(self, ctx: AttemptContext, key: str) -> Path:
        target = ctx.work_dir / WEIGHTS_DIR / Path(key).name
        await asyncio.to_thread(self.artifacts.get_file, key, target)
        return target

    async def _stop_when_asked(self, ctx: AttemptContext, process: TrainingProcess) -> None:
        await ctx.stop_event.wait()
        log.info("stopping training", run_id=ctx.run_id, reason=ctx.stop.reason)
        process.request_stop()
        preempted = ctx.stop.reason is StopReason.SHUTDOWN  # SIGTERM: the preemption grace bounds it
        grace = self.preemption_grace_seconds if preempted else self.cancel_grace_seconds
        if await process.kill_after(grace):
            log.warning("training child killed after the grace period", run_id=ctx.run_id,
                        grace_seconds=grace)  # fmt: skip

    async def _forward(self, ctx: AttemptContext, progress: Progress) -> None:
        if progress.kind == "phase":
            await ctx.enter_phase(types_pb2.RunPhase.Value(progress.phase.value))
        forced = progress.kind in ("epoch", "val", "phase")
        await ctx.reporter.progress(progress_snapshot(progress), force=forced)
        if progress.kind == "epoch":  # the epoch's checkpoint is on disk: offer it for resume now
            ctx.sync_checkpoint_soon()

    async def evaluate(self, trained: Trained) -> Evaluated:
        """The evaluation already ran in the training child: turn its metrics into the published form."""
        if trained.metrics_path is None:
            raise RuntimeError("training finished without an evaluation (metrics file missing)")
        metrics = trained.metrics or json.loads(trained.metrics_path.read_text())
        beside = trained.metrics_path.parent
        analysis = [(kind, beside / name) for kind, name in ANALYSIS_FILES if (beside / name).is_file()]
        gallery = sorted(beside.glob(split_analysis.GALLERY_GLOB))
        analysis += [(types_pb2.PREDICTION_GALLERY, p) for p in gallery]
        return Evaluated(evaluation_results(metrics), trained.metrics_path, trained.curves_path, analysis)

    async def upload(
        self, run_id: str, attempt: int, prepared: PreparedDataset, trained: Trained, evaluated: Evaluated
    ) -> list[types_pb2.Artifact]:
        """Stores the result files under the attempt's keys (sha256 each); the checkpoint, config and metrics
        must be there."""
        files: list[tuple[int, Path | None]] = [
            (types_pb2.CHECKPOINT, trained.best_checkpoint),
            (types_pb2.CONFIG, trained.config_path),
            (types_pb2.METRICS, evaluated.metrics_path),
            (types_pb2.SPLIT_MANIFEST, prepared.manifest_path),
            (types_pb2.LOG, trained.log_path),
            (types_pb2.CURVES, evaluated.curves_path),
            *evaluated.analysis,
        ]
        present = [(kind, path) for kind, path in files if path is not None and path.is_file()]
        required: set[int] = {types_pb2.CHECKPOINT, types_pb2.CONFIG, types_pb2.METRICS}
        missing = required - {kind for kind, _ in present}
        if missing:
            names = ", ".join(types_pb2.ArtifactKind.Name(k) for k in sorted(missing))  # type: ignore[arg-type]
            raise RuntimeError(f"training left no {names} file to upload")
        return await asyncio.to_thread(self._put_all, run_id, attempt, present)

    def _put_all(self, run_id: str, attempt: int, files: list[tuple[int, Path]]) -> list[types_pb2.Artifact]:
        stored = []
        for kind, path in files:
            item = self.artifacts.put_file(artifact_key(run_id, attempt, path.name), path)
            stored.append(
                types_pb2.Artifact(kind=kind, uri=item.key, size_bytes=item.size_bytes, sha256=item.sha256)  # type: ignore[arg-type]
            )
        return stored


def completed_payload(
    job: events_pb2.TrainingJob, display_name: str, device: str, prepared: PreparedDataset, trained: Trained,
    evaluated: Evaluated, artifacts: list[types_pb2.Artifact], seconds: float,
) -> events_pb2.RunCompleted:  # fmt: skip
    """Everything ``RunCompleted`` carries. ``config`` is the job's resolved config exactly as received, so
    ``config_sha256`` still describes it; ``config_text`` is the final config as trained (JSON; dataset, work
    dir and checkpoint paths relative to the attempt's work dir, as :func:`write_run_config` stores it)."""
    metrics = trained.metrics or {}
    payload = events_pb2.RunCompleted(
        artifacts=artifacts,
        evaluation=evaluated.results,
        dataset_snapshot_sha256=prepared.snapshot_sha256,
        config_sha256=job.config_sha256,
        config_text=trained.config_path.read_text(errors="replace") if trained.config_path.is_file() else "",
        versions=framework_versions(device, trained.versions),
        seed=int(job.hyperparameters.seed),
        training_seconds=trained.seconds or seconds,
        parameter_count=trained.parameter_count,
        epochs=trained.epochs,
        learning_rate=base_learning_rate(json_format.MessageToDict(job.config), job.hyperparameters),
        average_loss=average_loss(metrics),
        class_names=list(prepared.class_names),
        model_template=job.model_template,
        dataset=job.dataset_version.name or job.dataset,  # the version, also a plain reference's implicit one
        dataset_reference=job.dataset,  # the plain reference the run was created with (ListTrainedModels)
        base_model_id=job.base_model_id,
        owner=job.owner,
        display_name=display_name,
        dataset_version=job.dataset_version.name,
        split_sha256=job.dataset_version.split_sha256,
        stopped_early=trained.stopped_early,
        stopped_epoch=trained.epochs if trained.stopped_early else 0,
        stopped_by_time_budget=trained.stopped_by_time_budget,
    )
    payload.config.CopyFrom(job.config)
    return payload


def write_run_config(config: dict[str, Any], target: Path, work_dir: Path, prepared: PreparedDataset) -> Path:
    """The config as trained, stored as JSON data without server paths: the images directory becomes
    ``images``, anything under the attempt's work dir relative to it (``data/val.json``, ``train``,
    ``weights/base.pth``). ``fill_dataset`` sets every such path again when the config is used."""
    anchors = [(str(prepared.image_root), IMAGES_LABEL), (str(work_dir), "")]
    data = canonical(relative_paths(config, anchors))
    target.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
    return target


async def _tail_log(path: Path, emit: Callable[[str], Awaitable[None]]) -> None:
    """Forwards lines appended to the child's log file (as log events) until cancelled; flushes at the end."""
    position = 0
    partial = ""
    try:
        while True:
            await asyncio.sleep(LOG_POLL_SECONDS)
            position, partial = await _emit_new_lines(path, position, partial, emit)
    except asyncio.CancelledError:
        await _emit_new_lines(path, position, partial, emit)
        raise


async def _emit_new_lines(
    path: Path, position: int, partial: str, emit: Callable[[str], Awaitable[None]]
) -> tuple[int, str]:
    try:
        with path.open("rb") as f:
            f.seek(position)
            chunk = f.read(1 << 20)
    except OSError:
        return position, partial
    if not chunk:
        return position, partial
    text = partial + chunk.decode("utf-8", errors="replace")
    *lines, partial = text.split("\n")
    for line in lines:
        if line.strip():
            await emit(line)
    return position + len(chunk), partial
