"""One evaluation job, worked to its settlement.

Steps: claim the evaluation of trained_model (one cancelled while PENDING, or ended, is refused: the job is
acked without running it; an unanswered claim is retried by redelivery); fetch the model's checkpoint
(sha256-checked) and build the split from the version's frozen manifest
(``version_dataset.prepare_version_dataset``, every file sha256-checked), in a thread; score the model in a
child process (``evaluation_process``); upload the result files (sha256 recorded); publish ``completed``
durably; ack. The job message is the lease: in-progress acks keep it while the worker lives, and a worker
that dies leaves it to be redelivered (the next delivery's count is its attempt; the server drops reports of
older attempts). A cancel (the evaluation's control subject) kills the child and acks the job: the server
already marked the evaluation CANCELLED. A bad input (damaged version, classes the version lacks, checkpoint
not matching its sha256) fails the evaluation at once; any other error is retried by redelivery and reported
as a failure on the last delivery, so no evaluation waits forever. Nothing of the model or the version is
changed by a failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from common.artifacts import ArtifactStore
from common.dataset_layout import UNSPLIT, choose_layout
from common.inference_settings import record_to_proto
from common.logging import get_logger
from common.nats_streams import RetryPolicy
from common.proto.raven.v1 import datasets_pb2, evaluations_pb2, events_pb2, types_pb2
from common.tasks import cancel_and_wait
from services.trainer_worker.adapters.evaluation_jobs import EvaluationEventPublisher, parse_job
from services.trainer_worker.adapters.evaluation_process import (
    EvaluationProcess,
    EvaluationSpec,
    Scored,
    ScoringFailed,
    for_split,
)
from services.trainer_worker.adapters.jobs import JobMessage
from services.trainer_worker.adapters.version_dataset import prepare_version_dataset
from services.trainer_worker.adapters.version_preparation import VersionFilesChanged, read_file_manifest
from services.trainer_worker.domain.dataset import PreparedDataset
from services.trainer_worker.domain.job import Settlement
from services.trainer_worker.domain.problems import DatasetInvalid
from services.trainer_worker.service_layer.lease import in_progress_acks
from services.trainer_worker.service_layer.ports import (
    ClaimRefused,
    ControlChannel,
    EvaluationClaims,
    EvaluationClaimUnanswered,
    EventPublishFailed,
)
from services.trainer_worker.service_layer.results import detection_metrics
from services.trainer_worker.service_layer.steps import ANALYSIS_FILES

log = get_logger("trainer_worker.evaluations")
T = TypeVar("T")

OUTPUT_PREFIX = "evaluations"
# What a scored evaluation reports: its files, its metrics, how it predicted.
Outcome = tuple[list[types_pb2.Artifact], types_pb2.DetectionMetrics, evaluations_pb2.EvaluationInference]


@dataclass
class EvaluationServices:
    store: ArtifactStore
    publisher_for: Callable[[str, int], EvaluationEventPublisher]
    control: ControlChannel
    claims: EvaluationClaims
    worker_id: str
    work_root: Path
    device: str
    ack_wait: float
    retry: RetryPolicy  # the job consumer's: decides when a failing job has had its last delivery
    stopping: asyncio.Event


class _Stopped(Exception):
    def __init__(self, cancelled: bool) -> None:
        self.cancelled = cancelled


async def evaluate_job(msg: JobMessage, services: EvaluationServices) -> Settlement:
    """Work one delivered evaluation job; returns how its message was settled."""
    try:
        job = parse_job(msg.data)
    except ValueError as exc:
        await msg.reject(str(exc))
        return Settlement.TERM
    attempt = msg.num_delivered
    publisher = services.publisher_for(job.evaluation_id, attempt)
    try:  # the claim moves it to RUNNING (what a started report did) or says it must not run
        await services.claims.claim(job.evaluation_id, attempt, services.worker_id)
    except ClaimRefused as exc:
        log.info("evaluation claim refused; job acked unrun", evaluation=job.evaluation_id, reason=str(exc))
        await msg.ack()
        return Settlement.ACK
    except EvaluationClaimUnanswered as exc:
        log.warning("evaluation claim unanswered", evaluation=job.evaluation_id, error=str(exc))
        return await _retry_or_fail(msg, job, publisher, services, f"its claim was not answered ({exc})")
    work_dir = services.work_root / "evaluations" / f"{job.evaluation_id}-{attempt}"
    log.info("evaluating", evaluation=job.evaluation_id, model=job.trained_model, attempt=attempt)
    try:
        artifacts, metrics, inference = await _work(msg, job, attempt, work_dir, publisher, services)
    except _Stopped as stopped:
        if stopped.cancelled:
            log.info("evaluation cancelled", evaluation=job.evaluation_id)
            await msg.ack()  # the server marked it CANCELLED before telling us
            return Settlement.ACK
        await msg.nak(delay=0)  # shutting down: another worker takes it at once
        return Settlement.NAK
    except (DatasetInvalid, VersionFilesChanged) as exc:
        return await _settle(msg, publisher.failed(_failure("INVALID_DATASET", str(exc))))
    except ScoringFailed as exc:
        if exc.kind in ("INVALID_DATASET", "INVALID_CONFIG", "ARTIFACT_MISMATCH"):
            return await _settle(msg, publisher.failed(_failure(exc.kind, exc.message)))
        return await _retry_or_fail(msg, job, publisher, services, exc.message)
    except Exception as exc:  # a bug or an unreachable store: retry, and report on the last delivery
        log.exception("evaluation failed", evaluation=job.evaluation_id)
        return await _retry_or_fail(msg, job, publisher, services, type(exc).__name__)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return await _settle(msg, publisher.completed(metrics, artifacts, inference))


async def _work(
    msg: JobMessage,
    job: evaluations_pb2.EvaluationJob,
    attempt: int,
    work_dir: Path,
    publisher: EvaluationEventPublisher,
    services: EvaluationServices,
) -> Outcome:
    cancelled = asyncio.Event()
    unsubscribe = await services.control.subscribe(job.evaluation_id, lambda _a, _r: cancelled.set())
    acks = asyncio.create_task(in_progress_acks(msg, services.ack_wait))
    try:
        await publisher.progress("PREPARING_SPLIT")
        checkpoint, prepared = await _until_stopped(
            asyncio.to_thread(prepare_inputs, services.store, job, work_dir), cancelled, services.stopping
        )
        await publisher.progress("INFERENCE")
        spec = EvaluationSpec(
            config=_config_data(job), checkpoint=str(checkpoint), prepared=for_split(prepared, job.split),
            work_dir=str(work_dir / "run"), device=services.device,
        )  # fmt: skip
        process = EvaluationProcess(spec)
        try:
            scored = await _until_stopped(process.run(), cancelled, services.stopping)
        finally:
            process.kill()
        await publisher.progress("UPLOADING")
        artifacts = await asyncio.to_thread(_upload, services.store, job.evaluation_id, attempt, scored)
    finally:
        await cancel_and_wait(acks)
        try:
            await unsubscribe()
        except Exception as exc:
            log.warning("control unsubscribe failed", error=str(exc))
    metrics = detection_metrics(scored.metrics) or types_pb2.DetectionMetrics()
    return artifacts, metrics, record_to_proto(scored.inference)  # how the child predicted


async def _until_stopped(work: Awaitable[T], cancelled: asyncio.Event, stopping: asyncio.Event) -> T:
    task = asyncio.ensure_future(work)
    waits = [asyncio.create_task(cancelled.wait()), asyncio.create_task(stopping.wait())]
    try:
        await asyncio.wait({task, *waits}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    if task.done():
        return task.result()
    task.cancel()  # a thread finishes on its own; the child is killed by the caller
    raise _Stopped(cancelled=cancelled.is_set())


def prepare_inputs(
    store: ArtifactStore, job: evaluations_pb2.EvaluationJob, work_dir: Path
) -> tuple[Path, PreparedDataset]:
    """The model's checkpoint (sha256-checked) and the version's splits under ``work_dir``. Blocking."""
    checkpoint = work_dir / "weights" / Path(job.checkpoint.uri).name
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    store.get_file(job.checkpoint.uri, checkpoint)
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    if job.checkpoint.sha256 and digest != job.checkpoint.sha256.lower():
        raise ScoringFailed(
            "ARTIFACT_MISMATCH",
            f"the model's checkpoint has sha256 {digest} in the artifact store, the model recorded "
            f"{job.checkpoint.sha256}: it was replaced or damaged",
        )
    version = with_annotation_layout(store, job.dataset_version)
    prepared = prepare_version_dataset(store, version, work_dir / "data", class_names=list(job.class_names))
    return checkpoint, prepared


def with_annotation_layout(
    store: ArtifactStore, version: events_pb2.TrainingDatasetVersion
) -> events_pb2.TrainingDatasetVersion:
    """The version with its annotation files, found among its files by the one dataset layout rule."""
    files = read_file_manifest(store, version.file_manifest.uri, version.file_manifest.sha256)
    try:
        layout = choose_layout(version.name, {p for p in files if "/" not in p})
    except Exception as exc:
        raise VersionFilesChanged(f"its annotation files cannot be found ({exc})") from None
    out = events_pb2.TrainingDatasetVersion()
    out.CopyFrom(version)
    if UNSPLIT in layout.files:
        out.annotations_file = layout.files[UNSPLIT]
    else:
        out.own_split.extend(
            datasets_pb2.DatasetSplitFile(split=s, annotations_file=f)
            for s, f in sorted(layout.files.items())
        )
    return out


def _config_data(job: evaluations_pb2.EvaluationJob) -> dict[str, object]:
    from google.protobuf import json_format

    return json_format.MessageToDict(job.config)


def _upload(
    store: ArtifactStore, evaluation_id: str, attempt: int, scored: Scored
) -> list[types_pb2.Artifact]:
    by_name = {name: kind for kind, name in ANALYSIS_FILES}
    stored = []
    for path in scored.files:
        kind = by_name.get(path.name) or _gallery_kind(path)
        if not kind:
            continue
        item = store.put_file(f"{OUTPUT_PREFIX}/{evaluation_id}/{attempt}/{path.name}", path)
        stored.append(
            types_pb2.Artifact(kind=kind, uri=item.key, size_bytes=item.size_bytes, sha256=item.sha256)  # type: ignore[arg-type]
        )
    missing = {kind for kind, _ in ANALYSIS_FILES} - {a.kind for a in stored}
    if missing:
        raise RuntimeError(f"the evaluation left no {sorted(missing)} files to upload")
    return stored


def _gallery_kind(path: Path) -> int:
    """PREDICTION_GALLERY for a gallery PNG of the split analysis (0 where this build has no such kind)."""
    names = types_pb2.ArtifactKind.keys()
    return (
        types_pb2.ArtifactKind.Value("PREDICTION_GALLERY")
        if "gallery" in path.name and "PREDICTION_GALLERY" in names
        else 0
    )


def _failure(kind: str, message: str) -> types_pb2.Failure:
    return types_pb2.Failure(kind=types_pb2.FailureKind.Value(kind), message=message)


async def _retry_or_fail(
    msg: JobMessage,
    job: evaluations_pb2.EvaluationJob,
    publisher: EvaluationEventPublisher,
    services: EvaluationServices,
    what: str,
) -> Settlement:
    if not services.retry.exhausted(msg.num_delivered):
        await msg.fail(f"evaluation failed: {what}")
        return Settlement.NAK
    failure = _failure("INTERNAL_ERROR", f"the evaluation failed on every try ({what}); ask an operator")
    return await _settle(msg, publisher.failed(failure))


async def _settle(msg: JobMessage, publish: Awaitable[None]) -> Settlement:
    """Ack once the result is stored; nak when it could not be (the next delivery publishes it)."""
    try:
        await publish
    except EventPublishFailed as exc:
        log.warning("evaluation result not stored; job back to the queue", error=str(exc))
        await msg.nak()
        return Settlement.NAK
    await msg.ack()
    return Settlement.ACK
