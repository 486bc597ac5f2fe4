"""Protobuf ↔ domain translation for evaluations (no rules here)."""

from __future__ import annotations

from google.protobuf import json_format

from common.inference_settings import record_from_proto, record_to_proto
from common.proto.raven.v1 import evaluations_pb2 as pb
from common.proto.raven.v1 import events_pb2, types_pb2
from services.trained_model.adapters.dataset_versions import ResolvedVersion
from services.trained_model.domain.evaluation import Evaluation
from services.trained_model.domain.model import TrainedModel, model_name, run_name
from services.trained_model.entrypoints.convert import artifact_from_proto, artifact_to_proto, timestamp
from services.trained_model.service_layer.evaluations import Report


def metrics_to_proto(metrics: dict[str, object]) -> types_pb2.DetectionMetrics:
    return json_format.ParseDict(metrics, types_pb2.DetectionMetrics(), ignore_unknown_fields=True)


def evaluation_to_proto(e: Evaluation) -> pb.Evaluation:
    out = pb.Evaluation(
        name=e.name, trained_model=model_name(e.model_id), dataset_version=e.dataset_version, split=e.split,
        state=int(e.state), owner=e.owner, create_time=timestamp(e.create_time),  # type: ignore[arg-type]
        update_time=timestamp(e.update_time), end_time=timestamp(e.end_time), split_sha256=e.split_sha256,
        dataset=e.dataset, training_run=run_name(e.training_run_id), attempt=e.attempt,
        worker_id=e.worker_id, cancel_reason=e.cancel_reason,
        artifacts=[artifact_to_proto(a) for a in e.artifacts],
    )  # fmt: skip
    if e.metrics:
        out.metrics.CopyFrom(metrics_to_proto(e.metrics))
    if e.inference:
        out.inference.CopyFrom(record_to_proto(e.inference))
    if e.progress:
        json_format.ParseDict(e.progress, out.progress, ignore_unknown_fields=True)
    if e.failure_kind or e.failure_message:
        kind = e.failure_kind if e.failure_kind in types_pb2.FailureKind.keys() else "INTERNAL_ERROR"
        out.failure.kind = types_pb2.FailureKind.Value(kind)
        out.failure.message = e.failure_message
    return out


def report_from_event(event: pb.EvaluationEvent) -> Report | None:
    """The worker's report; None for an event without a payload this version knows."""
    kind = event.WhichOneof("payload")
    base = {"evaluation_id": event.evaluation_id, "attempt": event.attempt}
    if kind == "started":
        return Report(kind=kind, worker_id=event.started.worker_id, **base)  # type: ignore[arg-type]
    if kind == "progress":
        progress = json_format.MessageToDict(event.progress, preserving_proto_field_name=True)
        return Report(kind=kind, progress=progress, **base)  # type: ignore[arg-type]
    if kind == "completed":
        done = event.completed
        metrics = json_format.MessageToDict(done.metrics, preserving_proto_field_name=True)
        artifacts = tuple(a for a in map(artifact_from_proto, done.artifacts) if a is not None)
        inference = record_from_proto(done.inference) if done.HasField("inference") else None
        return Report(
            kind=kind, metrics=metrics, artifacts=artifacts, inference=inference,
            **base,  # type: ignore[arg-type]
        )  # fmt: skip
    if kind == "failed":
        failure = event.failed.failure
        return Report(
            kind=kind, failure_kind=types_pb2.FailureKind.Name(failure.kind),
            failure_message=failure.message, **base,  # type: ignore[arg-type]
        )  # fmt: skip
    return None


def evaluation_job(e: Evaluation, model: TrainedModel, version: ResolvedVersion) -> pb.EvaluationJob:
    job = pb.EvaluationJob(
        evaluation_id=e.id, trained_model=model.name, checkpoint=artifact_to_proto(model.checkpoint),
        class_names=list(model.class_names), split=e.split, owner=e.owner,
        dataset_version=events_pb2.TrainingDatasetVersion(
            name=version.name, snapshot_sha256=version.snapshot_sha256, split_sha256=version.split_sha256,
            split_manifest=version.split_manifest, file_manifest=version.file_manifest,
            blob_prefix=version.blob_prefix,
        ),
    )  # fmt: skip
    job.config.update(model.config)
    return job
