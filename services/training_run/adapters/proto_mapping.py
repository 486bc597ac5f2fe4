"""Domain ↔ protobuf translation shared by the servicer, the outbox and the watchers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from common import hyperparameters
from common.proto.raven.v1 import datasets_pb2, events_pb2, training_run_pb2, types_pb2
from common.tiling import FLAT_PREFIX as TILING_PREFIX
from common.tiling import KEYS as TILING_KEYS
from services.training_run.domain.budgets import runtime_used
from services.training_run.domain.model import (
    CancelRequested,
    Failure,
    FailureKind,
    Phase,
    RunState,
    StateChanged,
    TrainingRun,
)

RESOURCE_PREFIX = "trainingRuns/"


# The generated stubs type enum fields as their enum class, while the runtime takes any int. The domain enums
# carry the proto numbers, so these only tell the type checker what the value already is.
def state_to_proto(state: RunState) -> types_pb2.RunState:
    return cast(types_pb2.RunState, int(state))


def phase_to_proto(phase: Phase) -> types_pb2.RunPhase:
    return cast(types_pb2.RunPhase, int(phase))


def failure_kind_to_proto(kind: FailureKind) -> types_pb2.FailureKind:
    return cast(types_pb2.FailureKind, kind.number)


def run_name(run_id: str) -> str:
    return f"{RESOURCE_PREFIX}{run_id}"


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def from_timestamp(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def struct_from(data: dict[str, Any]) -> struct_pb2.Struct:
    value = struct_pb2.Struct()
    value.update(data)
    return value


def failure_to_proto(failure: Failure) -> types_pb2.Failure:
    return types_pb2.Failure(
        kind=failure_kind_to_proto(failure.kind), message=failure.message, details=list(failure.details)
    )


def failure_from_proto(failure: types_pb2.Failure) -> Failure:
    return Failure(
        FailureKind.from_number(failure.kind),
        failure.message or "the worker reported a failure without a message",
        tuple(failure.details),
    )


def hyperparameters_to_proto(values: dict[str, Any]) -> types_pb2.Hyperparameters:
    """The stored (flat) hyperparameters; the ``early_stopping_*`` pair becomes ``early_stopping``."""
    message = types_pb2.Hyperparameters(
        **{k: v for k, v in values.items() if k in hyperparameters.FIELDS and v is not None}
    )
    stopping = {k: values.get(f"early_stopping_{k}") for k in hyperparameters.EARLY_STOPPING_DEFAULTS}
    if any(v is not None for v in stopping.values()):
        message.early_stopping.CopyFrom(
            types_pb2.EarlyStopping(**{k: v for k, v in stopping.items() if v is not None})
        )
    tiling = {k: values.get(f"{TILING_PREFIX}{k}") for k in TILING_KEYS}
    if tiling["tile_size"]:
        message.tiling.CopyFrom(types_pb2.Tiling(**{k: v for k, v in tiling.items() if v is not None}))
    return message


def hyperparameters_from_proto(message: types_pb2.Hyperparameters) -> dict[str, Any]:
    """The fields the request set (zero included): every field is proto3 ``optional``; ``early_stopping``
    (set, even empty) and ``tiling`` as the mappings of their set fields."""
    return {
        descriptor.name: {d.name: v for d, v in value.ListFields()}
        if descriptor.name in ("early_stopping", "tiling")
        else value
        for descriptor, value in message.ListFields()
    }


def run_to_proto(run: TrainingRun, *, with_config: bool = True) -> training_run_pb2.TrainingRun:
    """The API resource; ``with_config=False`` leaves out the (large) resolved config for streams."""
    message = training_run_pb2.TrainingRun(
        name=run_name(run.id),
        display_name=run.display_name,
        description=run.description,
        dataset=run.spec.dataset,
        base_model=run.spec.base_model,
        model_template=run.spec.model_template,
        class_names=list(run.spec.class_names),
        hyperparameters=hyperparameters_to_proto(run.spec.hyperparameters),
        state=state_to_proto(run.state),
        attempt=run.attempt,
        trained_model=run.trained_model,
        owner=run.owner,
        create_time=timestamp(run.create_time),
        update_time=timestamp(run.update_time),
        start_time=timestamp(run.start_time),
        end_time=timestamp(run.end_time),
        config_sha256=run.spec.config_sha256,
        etag=etag(run),
        dataset_version=run.spec.dataset_version,
        dataset_snapshot_sha256=run.spec.dataset_source.get("snapshot_sha256", ""),
        split_sha256=run.spec.dataset_source.get("split_sha256", ""),
        stopped_early=run.stopped_epoch is not None,
        stopped_epoch=run.stopped_epoch or 0,
        stopped_by_time_budget=run.stopped_by_time_budget,
        effective_learning_rate=run.spec.effective_learning_rate or 0.0,
        # as of the run's last change (a claim: the moment it started RUNNING again)
        runtime_used=duration(
            runtime_used(run.transitions, run.update_time or run.create_time).total_seconds()
        ),
    )
    if run.spec.max_runtime_seconds is not None:
        message.max_runtime.CopyFrom(duration(run.spec.max_runtime_seconds))
    if run.spec.max_pending_seconds is not None:
        message.max_pending.CopyFrom(duration(run.spec.max_pending_seconds))
    if run.progress:
        message.progress.ParseFromString(run.progress)
    if run.phase or run.progress:
        message.progress.phase = phase_to_proto(run.phase)
    if run.failure is not None:
        message.failure.CopyFrom(failure_to_proto(run.failure))
    for item in run.transitions:
        message.transitions.add(
            from_state=state_to_proto(item.from_state),
            to_state=state_to_proto(item.to_state),
            time=timestamp(item.time),
            reason=item.reason,
            attempt=item.attempt,
        )
    for record in run.attempts:
        message.attempts.add(
            attempt=record.attempt, batch_size=record.batch_size, learning_rate=record.learning_rate,
            preempted=record.preempted, end_reason=record.end_reason,
        )  # fmt: skip
    if with_config:
        message.MergeFrom(config_to_proto(run))
    return message


def config_to_proto(run: TrainingRun) -> training_run_pb2.TrainingRun:
    """The run's resolved config fields alone: merged into (or, serialized, appended to) the run without its
    config, it is the whole run."""
    message = training_run_pb2.TrainingRun(resolved_config=run.spec.config_text)
    message.resolved_config_data.CopyFrom(_config_struct(run.spec.config_sha256, run.spec.config_data))
    return message


def duration(seconds: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(timedelta(seconds=seconds))
    return message


def duration_seconds(message: duration_pb2.Duration) -> float:
    """A Duration field as seconds (nanosecond precision kept)."""
    return message.seconds + message.nanos / 1e9


def _config_struct(sha256: str, data: dict[str, Any]) -> struct_pb2.Struct:
    """Configs are immutable and named by their hash: build each Struct once (it is most of a Get's CPU)."""
    if not sha256:
        return struct_from(data)
    cached = _STRUCTS.get(sha256)
    if cached is None:
        cached = struct_from(data)
        if len(_STRUCTS) >= 256:
            _STRUCTS.pop(next(iter(_STRUCTS)))
        _STRUCTS[sha256] = cached
    return cached


_STRUCTS: dict[str, struct_pb2.Struct] = {}


def etag(run: TrainingRun) -> str:
    return f'W/"{run.id[:8]}-{run.version}"'


def training_job(run: TrainingRun, attempt: int) -> events_pb2.TrainingJob:
    """The job of ``attempt``: the run's hyperparameters with the attempt's batch size and learning rate."""
    values = dict(run.spec.hyperparameters)
    for record in run.attempts:
        if record.attempt == attempt:
            values.update(batch_size=record.batch_size, learning_rate=record.learning_rate)
    return events_pb2.TrainingJob(
        run_id=run.id,
        attempt=attempt,
        dataset=run.spec.dataset,
        model_template=run.spec.model_template,
        base_model_id=run.spec.base_model.removeprefix("trainedModels/"),
        base_model_checkpoint=run.spec.base_model_checkpoint,
        class_names=list(run.spec.class_names),
        hyperparameters=hyperparameters_to_proto(values),
        config=struct_from(run.spec.config_data),
        config_sha256=run.spec.config_sha256,
        owner=run.owner,
        create_time=timestamp(run.create_time),
        dataset_version=training_dataset_version(run.spec.dataset_version, run.spec.dataset_source),
    )


def training_dataset_version(name: str, source: dict[str, Any]) -> events_pb2.TrainingDatasetVersion | None:
    """The job's dataset version from the run's ``dataset_source`` (resolved at Create); None without one."""
    if not name:
        return None
    files = source.get("annotation_files", {})
    return events_pb2.TrainingDatasetVersion(
        name=name, snapshot_sha256=source["snapshot_sha256"], split_sha256=source["split_sha256"],
        split_manifest=types_pb2.Artifact(kind=types_pb2.SPLIT_MANIFEST, **source["split_manifest"]),
        file_manifest=types_pb2.Artifact(kind=types_pb2.DATASET_SNAPSHOT, **source["file_manifest"]),
        blob_prefix=source["blob_prefix"], annotations_file=files.get("all", ""),
        own_split=[
            datasets_pb2.DatasetSplitFile(split=s, annotations_file=f)
            for s, f in sorted(files.items()) if s != "all"
        ],
    )  # fmt: skip


def state_changed_event(event: StateChanged) -> events_pb2.RunEvent:
    return events_pb2.RunEvent(
        run_id=event.run_id,
        attempt=event.attempt,
        time=timestamp(event.time),
        state_changed=events_pb2.StateChanged(
            from_state=state_to_proto(event.from_state),
            to_state=state_to_proto(event.to_state),
            reason=event.reason,
        ),
    )


def control_message(event: CancelRequested) -> events_pb2.RunControl:
    return events_pb2.RunControl(run_id=event.run_id, attempt=event.attempt, cancel=True, reason=event.reason)
