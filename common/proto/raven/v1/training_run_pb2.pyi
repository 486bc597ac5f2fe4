import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from common.proto.raven.v1 import types_pb2 as _types_pb2
from common.proto.raven.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainingRun(_message.Message):
    __slots__ = ("name", "display_name", "description", "dataset", "base_model", "model_template", "class_names", "hyperparameters", "state", "progress", "attempt", "failure", "trained_model", "owner", "create_time", "update_time", "start_time", "end_time", "transitions", "resolved_config", "resolved_config_data", "config_sha256", "etag", "attempts", "dataset_version", "dataset_snapshot_sha256", "split_sha256", "stopped_early", "stopped_epoch", "max_runtime", "max_pending", "stopped_by_time_budget", "runtime_used", "effective_learning_rate")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    TRAINED_MODEL_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_CONFIG_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_CONFIG_DATA_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SHA256_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_SNAPSHOT_SHA256_FIELD_NUMBER: _ClassVar[int]
    SPLIT_SHA256_FIELD_NUMBER: _ClassVar[int]
    STOPPED_EARLY_FIELD_NUMBER: _ClassVar[int]
    STOPPED_EPOCH_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNTIME_FIELD_NUMBER: _ClassVar[int]
    MAX_PENDING_FIELD_NUMBER: _ClassVar[int]
    STOPPED_BY_TIME_BUDGET_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_USED_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    description: str
    dataset: str
    base_model: str
    model_template: str
    class_names: _containers.RepeatedScalarFieldContainer[str]
    hyperparameters: _types_pb2.Hyperparameters
    state: _types_pb2.RunState
    progress: _types_pb2.ProgressSnapshot
    attempt: int
    failure: _types_pb2.Failure
    trained_model: str
    owner: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    transitions: _containers.RepeatedCompositeFieldContainer[StateTransition]
    resolved_config: str
    resolved_config_data: _struct_pb2.Struct
    config_sha256: str
    etag: str
    attempts: _containers.RepeatedCompositeFieldContainer[TrainingRunAttempt]
    dataset_version: str
    dataset_snapshot_sha256: str
    split_sha256: str
    stopped_early: bool
    stopped_epoch: int
    max_runtime: _duration_pb2.Duration
    max_pending: _duration_pb2.Duration
    stopped_by_time_budget: bool
    runtime_used: _duration_pb2.Duration
    effective_learning_rate: float
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., dataset: _Optional[str] = ..., base_model: _Optional[str] = ..., model_template: _Optional[str] = ..., class_names: _Optional[_Iterable[str]] = ..., hyperparameters: _Optional[_Union[_types_pb2.Hyperparameters, _Mapping]] = ..., state: _Optional[_Union[_types_pb2.RunState, str]] = ..., progress: _Optional[_Union[_types_pb2.ProgressSnapshot, _Mapping]] = ..., attempt: _Optional[int] = ..., failure: _Optional[_Union[_types_pb2.Failure, _Mapping]] = ..., trained_model: _Optional[str] = ..., owner: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., transitions: _Optional[_Iterable[_Union[StateTransition, _Mapping]]] = ..., resolved_config: _Optional[str] = ..., resolved_config_data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., config_sha256: _Optional[str] = ..., etag: _Optional[str] = ..., attempts: _Optional[_Iterable[_Union[TrainingRunAttempt, _Mapping]]] = ..., dataset_version: _Optional[str] = ..., dataset_snapshot_sha256: _Optional[str] = ..., split_sha256: _Optional[str] = ..., stopped_early: bool = ..., stopped_epoch: _Optional[int] = ..., max_runtime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_pending: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., stopped_by_time_budget: bool = ..., runtime_used: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., effective_learning_rate: _Optional[float] = ...) -> None: ...

class StateTransition(_message.Message):
    __slots__ = ("from_state", "to_state", "time", "reason", "attempt")
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    from_state: _types_pb2.RunState
    to_state: _types_pb2.RunState
    time: _timestamp_pb2.Timestamp
    reason: str
    attempt: int
    def __init__(self, from_state: _Optional[_Union[_types_pb2.RunState, str]] = ..., to_state: _Optional[_Union[_types_pb2.RunState, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class TrainingRunAttempt(_message.Message):
    __slots__ = ("attempt", "batch_size", "learning_rate", "preempted", "end_reason")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    PREEMPTED_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    batch_size: int
    learning_rate: float
    preempted: bool
    end_reason: str
    def __init__(self, attempt: _Optional[int] = ..., batch_size: _Optional[int] = ..., learning_rate: _Optional[float] = ..., preempted: bool = ..., end_reason: _Optional[str] = ...) -> None: ...

class CreateTrainingRunRequest(_message.Message):
    __slots__ = ("training_run", "request_id", "validate_only", "allow_split_overlap")
    TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    ALLOW_SPLIT_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    training_run: TrainingRun
    request_id: str
    validate_only: bool
    allow_split_overlap: bool
    def __init__(self, training_run: _Optional[_Union[TrainingRun, _Mapping]] = ..., request_id: _Optional[str] = ..., validate_only: bool = ..., allow_split_overlap: bool = ...) -> None: ...

class GetTrainingRunRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListTrainingRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "states", "owner", "dataset", "base_model", "model_template")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    states: _containers.RepeatedScalarFieldContainer[_types_pb2.RunState]
    owner: str
    dataset: str
    base_model: str
    model_template: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., states: _Optional[_Iterable[_Union[_types_pb2.RunState, str]]] = ..., owner: _Optional[str] = ..., dataset: _Optional[str] = ..., base_model: _Optional[str] = ..., model_template: _Optional[str] = ...) -> None: ...

class ListTrainingRunsResponse(_message.Message):
    __slots__ = ("training_runs", "next_page_token", "total_size")
    TRAINING_RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    training_runs: _containers.RepeatedCompositeFieldContainer[TrainingRun]
    next_page_token: str
    total_size: int
    def __init__(self, training_runs: _Optional[_Iterable[_Union[TrainingRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class UpdateTrainingRunRequest(_message.Message):
    __slots__ = ("training_run", "update_mask", "etag")
    TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    training_run: TrainingRun
    update_mask: _field_mask_pb2.FieldMask
    etag: str
    def __init__(self, training_run: _Optional[_Union[TrainingRun, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class DeleteTrainingRunRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class CancelTrainingRunRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WatchTrainingRunRequest(_message.Message):
    __slots__ = ("name", "resume_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    resume_token: str
    def __init__(self, name: _Optional[str] = ..., resume_token: _Optional[str] = ...) -> None: ...

class WatchTrainingRunResponse(_message.Message):
    __slots__ = ("event", "resume_token", "training_run")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    event: _events_pb2.RunEvent
    resume_token: str
    training_run: TrainingRun
    def __init__(self, event: _Optional[_Union[_events_pb2.RunEvent, _Mapping]] = ..., resume_token: _Optional[str] = ..., training_run: _Optional[_Union[TrainingRun, _Mapping]] = ...) -> None: ...

class WatchTrainingRunsRequest(_message.Message):
    __slots__ = ("states", "owner", "dataset", "model_template")
    STATES_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODEL_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[_types_pb2.RunState]
    owner: str
    dataset: str
    model_template: str
    def __init__(self, states: _Optional[_Iterable[_Union[_types_pb2.RunState, str]]] = ..., owner: _Optional[str] = ..., dataset: _Optional[str] = ..., model_template: _Optional[str] = ...) -> None: ...

class WatchTrainingRunsResponse(_message.Message):
    __slots__ = ("training_run", "previous_state", "time")
    TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    training_run: TrainingRun
    previous_state: _types_pb2.RunState
    time: _timestamp_pb2.Timestamp
    def __init__(self, training_run: _Optional[_Union[TrainingRun, _Mapping]] = ..., previous_state: _Optional[_Union[_types_pb2.RunState, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetTrainingRunLogsRequest(_message.Message):
    __slots__ = ("name", "page_size", "page_token", "attempt")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    name: str
    page_size: int
    page_token: str
    attempt: int
    def __init__(self, name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class GetTrainingRunLogsResponse(_message.Message):
    __slots__ = ("lines", "next_page_token", "complete")
    LINES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    complete: bool
    def __init__(self, lines: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ..., complete: bool = ...) -> None: ...

class ClaimTrainingRunRequest(_message.Message):
    __slots__ = ("name", "worker_id", "job_attempt", "worker")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    name: str
    worker_id: str
    job_attempt: int
    worker: WorkerInfo
    def __init__(self, name: _Optional[str] = ..., worker_id: _Optional[str] = ..., job_attempt: _Optional[int] = ..., worker: _Optional[_Union[WorkerInfo, _Mapping]] = ...) -> None: ...

class ClaimTrainingRunResponse(_message.Message):
    __slots__ = ("training_run", "attempt", "lease_expire_time", "heartbeat_interval", "resume_checkpoint")
    TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    RESUME_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    training_run: TrainingRun
    attempt: int
    lease_expire_time: _timestamp_pb2.Timestamp
    heartbeat_interval: _duration_pb2.Duration
    resume_checkpoint: str
    def __init__(self, training_run: _Optional[_Union[TrainingRun, _Mapping]] = ..., attempt: _Optional[int] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., resume_checkpoint: _Optional[str] = ...) -> None: ...

class HeartbeatTrainingRunRequest(_message.Message):
    __slots__ = ("name", "worker_id", "attempt", "latest_checkpoint", "worker")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LATEST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    name: str
    worker_id: str
    attempt: int
    latest_checkpoint: str
    worker: WorkerInfo
    def __init__(self, name: _Optional[str] = ..., worker_id: _Optional[str] = ..., attempt: _Optional[int] = ..., latest_checkpoint: _Optional[str] = ..., worker: _Optional[_Union[WorkerInfo, _Mapping]] = ...) -> None: ...

class HeartbeatTrainingRunResponse(_message.Message):
    __slots__ = ("lease_expire_time", "cancel_requested")
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    lease_expire_time: _timestamp_pb2.Timestamp
    cancel_requested: bool
    def __init__(self, lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_requested: bool = ...) -> None: ...

class ReleaseTrainingRunRequest(_message.Message):
    __slots__ = ("name", "worker_id", "attempt", "reason", "latest_checkpoint")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LATEST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    worker_id: str
    attempt: int
    reason: str
    latest_checkpoint: str
    def __init__(self, name: _Optional[str] = ..., worker_id: _Optional[str] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ..., latest_checkpoint: _Optional[str] = ...) -> None: ...

class HeartbeatWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "worker")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    worker: WorkerInfo
    def __init__(self, worker_id: _Optional[str] = ..., worker: _Optional[_Union[WorkerInfo, _Mapping]] = ...) -> None: ...

class ModelTemplate(_message.Message):
    __slots__ = ("name", "template_id", "description", "architecture", "default_hyperparameters", "ranges", "gpu_recommended", "options", "mmdet_config")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    RANGES_FIELD_NUMBER: _ClassVar[int]
    GPU_RECOMMENDED_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    MMDET_CONFIG_FIELD_NUMBER: _ClassVar[int]
    name: str
    template_id: str
    description: str
    architecture: str
    default_hyperparameters: _types_pb2.Hyperparameters
    ranges: _containers.RepeatedCompositeFieldContainer[HyperparameterRange]
    gpu_recommended: bool
    options: TemplateOptions
    mmdet_config: str
    def __init__(self, name: _Optional[str] = ..., template_id: _Optional[str] = ..., description: _Optional[str] = ..., architecture: _Optional[str] = ..., default_hyperparameters: _Optional[_Union[_types_pb2.Hyperparameters, _Mapping]] = ..., ranges: _Optional[_Iterable[_Union[HyperparameterRange, _Mapping]]] = ..., gpu_recommended: bool = ..., options: _Optional[_Union[TemplateOptions, _Mapping]] = ..., mmdet_config: _Optional[str] = ...) -> None: ...

class HyperparameterRange(_message.Message):
    __slots__ = ("field", "min", "max", "min_exclusive", "max_exclusive", "integer", "multiple_of", "note")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MIN_EXCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    MAX_EXCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    MULTIPLE_OF_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    field: str
    min: float
    max: float
    min_exclusive: bool
    max_exclusive: bool
    integer: bool
    multiple_of: int
    note: str
    def __init__(self, field: _Optional[str] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., min_exclusive: bool = ..., max_exclusive: bool = ..., integer: bool = ..., multiple_of: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class TemplateOptions(_message.Message):
    __slots__ = ("mixed_precision", "tiling", "multi_gpu")
    MIXED_PRECISION_FIELD_NUMBER: _ClassVar[int]
    TILING_FIELD_NUMBER: _ClassVar[int]
    MULTI_GPU_FIELD_NUMBER: _ClassVar[int]
    mixed_precision: bool
    tiling: bool
    multi_gpu: bool
    def __init__(self, mixed_precision: bool = ..., tiling: bool = ..., multi_gpu: bool = ...) -> None: ...

class ListModelTemplatesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelTemplatesResponse(_message.Message):
    __slots__ = ("model_templates", "next_page_token")
    MODEL_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    model_templates: _containers.RepeatedCompositeFieldContainer[ModelTemplate]
    next_page_token: str
    def __init__(self, model_templates: _Optional[_Iterable[_Union[ModelTemplate, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetModelTemplateRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("device_kind", "gpu_model", "gpu_count", "slots", "gpus_per_run")
    DEVICE_KIND_FIELD_NUMBER: _ClassVar[int]
    GPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    GPUS_PER_RUN_FIELD_NUMBER: _ClassVar[int]
    device_kind: str
    gpu_model: str
    gpu_count: int
    slots: int
    gpus_per_run: int
    def __init__(self, device_kind: _Optional[str] = ..., gpu_model: _Optional[str] = ..., gpu_count: _Optional[int] = ..., slots: _Optional[int] = ..., gpus_per_run: _Optional[int] = ...) -> None: ...

class Worker(_message.Message):
    __slots__ = ("name", "worker_id", "info", "training_runs", "free_slots", "first_seen_time", "last_seen_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    TRAINING_RUNS_FIELD_NUMBER: _ClassVar[int]
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    worker_id: str
    info: WorkerInfo
    training_runs: _containers.RepeatedScalarFieldContainer[str]
    free_slots: int
    first_seen_time: _timestamp_pb2.Timestamp
    last_seen_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., worker_id: _Optional[str] = ..., info: _Optional[_Union[WorkerInfo, _Mapping]] = ..., training_runs: _Optional[_Iterable[str]] = ..., free_slots: _Optional[int] = ..., first_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QueueDepth(_message.Message):
    __slots__ = ("capability", "pending_training_runs", "workers", "free_slots")
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    PENDING_TRAINING_RUNS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    capability: str
    pending_training_runs: int
    workers: int
    free_slots: int
    def __init__(self, capability: _Optional[str] = ..., pending_training_runs: _Optional[int] = ..., workers: _Optional[int] = ..., free_slots: _Optional[int] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ("seen_within",)
    SEEN_WITHIN_FIELD_NUMBER: _ClassVar[int]
    seen_within: _duration_pb2.Duration
    def __init__(self, seen_within: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers", "queue")
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[Worker]
    queue: _containers.RepeatedCompositeFieldContainer[QueueDepth]
    def __init__(self, workers: _Optional[_Iterable[_Union[Worker, _Mapping]]] = ..., queue: _Optional[_Iterable[_Union[QueueDepth, _Mapping]]] = ...) -> None: ...
