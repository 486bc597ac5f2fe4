"""Protobuf ↔ domain translation (no rules here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from common.errors import FieldViolation, InvalidArgument
from common.proto.raven.v1 import events_pb2, trained_model_pb2, types_pb2
from common.tiling import inference_of_config
from services.trained_model.domain.champion_gate import PublishDecision
from services.trained_model.domain.lineage import Lineage, LineageNode
from services.trained_model.domain.model import Artifact, ArtifactKind, TrainedModel, model_name, run_name
from services.trained_model.service_layer.commands import RegisterTrainedModel


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def artifact_to_proto(artifact: Artifact) -> types_pb2.Artifact:
    return types_pb2.Artifact(
        kind=types_pb2.ArtifactKind.Value(artifact.kind.value),
        uri=artifact.uri,
        size_bytes=artifact.size_bytes,
        sha256=artifact.sha256,
    )


def artifact_from_proto(artifact: types_pb2.Artifact) -> Artifact | None:
    if artifact.kind == types_pb2.ARTIFACT_KIND_UNSPECIFIED:
        return None
    return Artifact(
        ArtifactKind(types_pb2.ArtifactKind.Name(artifact.kind)),
        artifact.uri,
        artifact.size_bytes,
        artifact.sha256,
    )


def artifact_kind(value: int) -> ArtifactKind:
    if value == types_pb2.ARTIFACT_KIND_UNSPECIFIED:
        return ArtifactKind.CHECKPOINT
    try:
        return ArtifactKind(types_pb2.ArtifactKind.Name(value))
    except ValueError as exc:
        raise InvalidArgument(
            "unknown artifact kind", [FieldViolation("kind", f"{value} is not a kind")]
        ) from exc


def evaluation_to_proto(data: dict[str, Any]) -> types_pb2.EvaluationResults:
    return json_format.ParseDict(data, types_pb2.EvaluationResults(), ignore_unknown_fields=True)


def decision_to_proto(d: PublishDecision | None) -> trained_model_pb2.PublishDecision | None:
    if d is None:
        return None
    return trained_model_pb2.PublishDecision(
        outcome=trained_model_pb2.PublishDecision.Outcome.Value(f"OUTCOME_{d.outcome.value}"),
        champion=d.champion,
        dataset_version=d.dataset_version,
        split_sha256=d.split_sha256,
        candidate_bbox_map=d.candidate_bbox_map,
        champion_bbox_map=d.champion_bbox_map,
        tolerance=d.tolerance,
        candidate_source=d.candidate_source,
        message=d.message,
        decided_by=d.decided_by,
        decide_time=timestamp(d.decide_time),
    )


def model_to_proto(m: TrainedModel) -> trained_model_pb2.TrainedModel:
    config = struct_pb2.Struct()
    config.update(m.config)
    return trained_model_pb2.TrainedModel(
        name=m.name,
        display_name=m.display_name,
        version=m.version,
        description=m.description,
        training_run=run_name(m.training_run_id),
        base_model=model_name(m.base_model_id) if m.base_model_id else "",
        dataset=m.dataset,
        dataset_snapshot_sha256=m.dataset_snapshot_sha256,
        split_sha256=m.split_sha256,
        dataset_reference=m.dataset_reference,
        class_names=m.class_names,
        model_template=m.model_template,
        config_text=m.config_text,
        config=config,
        config_sha256=m.config_sha256,
        checkpoint=artifact_to_proto(m.checkpoint),
        artifacts=[artifact_to_proto(a) for a in m.artifacts],
        evaluation=evaluation_to_proto(m.evaluation),
        training_seconds=m.training_seconds,
        parameter_count=m.parameter_count,
        versions=json_format.ParseDict(
            m.framework_versions, types_pb2.FrameworkVersions(), ignore_unknown_fields=True
        ),
        seed=m.seed,
        hyperparameters=types_pb2.Hyperparameters(
            epochs=m.epochs, learning_rate=m.learning_rate, seed=m.seed
        ),
        owner=m.owner,
        published=m.published,
        published_by=m.published_by,
        publish_time=timestamp(m.publish_time),
        create_time=timestamp(m.create_time),
        update_time=timestamp(m.update_time),
        aliases=m.aliases,
        publish_decision=decision_to_proto(PublishDecision.from_dict(m.publish_decision)),
        etag=m.etag,
        sliced_inference=types_pb2.SlicedInference(**inference_of_config(m.config)),
    )


def statistics_to_proto(m: TrainedModel) -> trained_model_pb2.TrainedModelStatistics:
    return trained_model_pb2.TrainedModelStatistics(
        trained_model=m.name,
        training_seconds=m.training_seconds,
        parameter_count=m.parameter_count,
        epochs=m.epochs,
        learning_rate=m.learning_rate,
        average_loss=m.average_loss,
        evaluation=evaluation_to_proto(m.evaluation),
    )


def node_to_proto(n: LineageNode) -> trained_model_pb2.LineageNode:
    return trained_model_pb2.LineageNode(
        trained_model=model_name(n.model_id),
        display_name=n.display_name,
        version=n.version,
        base_model=model_name(n.base_model_id) if n.base_model_id else "",
        training_run=run_name(n.training_run_id),
        dataset=n.dataset,
        dataset_snapshot_sha256=n.dataset_snapshot_sha256,
        split_sha256=n.split_sha256,
        bbox_map=n.bbox_map or 0.0,
        published=n.published,
        depth=n.depth,
    )


def lineage_to_proto(lineage: Lineage) -> trained_model_pb2.ModelLineage:
    return trained_model_pb2.ModelLineage(
        model=node_to_proto(lineage.model),
        ancestors=[node_to_proto(n) for n in lineage.ancestors],
        descendants=[node_to_proto(n) for n in lineage.descendants],
    )


def register_command(event: events_pb2.RunEvent) -> RegisterTrainedModel:
    done = event.completed
    artifacts = [a for a in (artifact_from_proto(p) for p in done.artifacts) if a is not None]
    evaluation = json_format.MessageToDict(done.evaluation, preserving_proto_field_name=True)
    return RegisterTrainedModel(
        run_id=event.run_id,
        attempt=event.attempt,
        owner=done.owner,
        display_name=done.display_name,
        artifacts=artifacts,
        base_model_id=done.base_model_id.removeprefix("trainedModels/"),
        dataset=done.dataset,
        dataset_snapshot_sha256=done.dataset_snapshot_sha256,
        split_sha256=done.split_sha256,
        dataset_reference=done.dataset_reference,
        class_names=list(done.class_names),
        model_template=done.model_template,
        config_text=done.config_text,
        config=json_format.MessageToDict(done.config),
        config_sha256=done.config_sha256,
        evaluation=evaluation,
        bbox_map=done.evaluation.val.bbox_map if done.evaluation.HasField("val") else None,
        training_seconds=done.training_seconds,
        parameter_count=done.parameter_count,
        framework_versions=json_format.MessageToDict(done.versions, preserving_proto_field_name=True),
        seed=done.seed,
        epochs=done.epochs,
        learning_rate=done.learning_rate,
        average_loss=done.average_loss,
    )
