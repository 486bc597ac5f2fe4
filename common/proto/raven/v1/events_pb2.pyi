import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from common.proto.raven.v1 import types_pb2 as _types_pb2
from common.proto.raven.v1 import datasets_pb2 as _datasets_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainingJob(_message.Message):
    __slots__ = ("run_id", "attempt", "dataset", "model_template", "base_model_id", "base_model_checkpoint", "class_names", "hyperparameters", "config", "config_sha256", "owner", "create_time", "dataset_version")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODEL_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SHA256_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    dataset: str
    model_template: str
    base_model_id: str
    base_model_checkpoint: str
    class_names: _containers.RepeatedScalarFieldContainer[str]
    hyperparameters: _types_pb2.Hyperparameters
    config: _struct_pb2.Struct
    config_sha256: str
    owner: str
    create_time: _timestamp_pb2.Timestamp
    dataset_version: TrainingDatasetVersion
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., dataset: _Optional[str] = ..., model_template: _Optional[str] = ..., base_model_id: _Optional[str] = ..., base_model_checkpoint: _Optional[str] = ..., class_names: _Optional[_Iterable[str]] = ..., hyperparameters: _Optional[_Union[_types_pb2.Hyperparameters, _Mapping]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., config_sha256: _Optional[str] = ..., owner: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dataset_version: _Optional[_Union[TrainingDatasetVersion, _Mapping]] = ...) -> None: ...

class TrainingDatasetVersion(_message.Message):
    __slots__ = ("name", "snapshot_sha256", "split_manifest", "split_sha256", "file_manifest", "blob_prefix", "annotations_file", "own_split")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_SHA256_FIELD_NUMBER: _ClassVar[int]
    SPLIT_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    SPLIT_SHA256_FIELD_NUMBER: _ClassVar[int]
    FILE_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    BLOB_PREFIX_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FILE_FIELD_NUMBER: _ClassVar[int]
    OWN_SPLIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    snapshot_sha256: str
    split_manifest: _types_pb2.Artifact
    split_sha256: str
    file_manifest: _types_pb2.Artifact
    blob_prefix: str
    annotations_file: str
    own_split: _containers.RepeatedCompositeFieldContainer[_datasets_pb2.DatasetSplitFile]
    def __init__(self, name: _Optional[str] = ..., snapshot_sha256: _Optional[str] = ..., split_manifest: _Optional[_Union[_types_pb2.Artifact, _Mapping]] = ..., split_sha256: _Optional[str] = ..., file_manifest: _Optional[_Union[_types_pb2.Artifact, _Mapping]] = ..., blob_prefix: _Optional[str] = ..., annotations_file: _Optional[str] = ..., own_split: _Optional[_Iterable[_Union[_datasets_pb2.DatasetSplitFile, _Mapping]]] = ...) -> None: ...

class RunControl(_message.Message):
    __slots__ = ("run_id", "attempt", "cancel", "reason")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    cancel: bool
    reason: str
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., cancel: bool = ..., reason: _Optional[str] = ...) -> None: ...

class RunStarted(_message.Message):
    __slots__ = ("worker_id", "device", "resumed", "resumed_from")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FROM_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    device: str
    resumed: bool
    resumed_from: str
    def __init__(self, worker_id: _Optional[str] = ..., device: _Optional[str] = ..., resumed: bool = ..., resumed_from: _Optional[str] = ...) -> None: ...

class PhaseChanged(_message.Message):
    __slots__ = ("phase",)
    PHASE_FIELD_NUMBER: _ClassVar[int]
    phase: _types_pb2.RunPhase
    def __init__(self, phase: _Optional[_Union[_types_pb2.RunPhase, str]] = ...) -> None: ...

class ProgressReported(_message.Message):
    __slots__ = ("progress",)
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    progress: _types_pb2.ProgressSnapshot
    def __init__(self, progress: _Optional[_Union[_types_pb2.ProgressSnapshot, _Mapping]] = ...) -> None: ...

class LogLines(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, lines: _Optional[_Iterable[str]] = ...) -> None: ...

class RunCompleted(_message.Message):
    __slots__ = ("artifacts", "evaluation", "dataset_snapshot_sha256", "config_sha256", "config_text", "config", "versions", "seed", "training_seconds", "parameter_count", "epochs", "learning_rate", "average_loss", "class_names", "model_template", "dataset", "base_model_id", "owner", "display_name", "dataset_version", "split_sha256", "stopped_early", "stopped_epoch", "stopped_by_time_budget", "dataset_reference")
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    DATASET_SNAPSHOT_SHA256_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SHA256_FIELD_NUMBER: _ClassVar[int]
    CONFIG_TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TRAINING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_LOSS_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    MODEL_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPLIT_SHA256_FIELD_NUMBER: _ClassVar[int]
    STOPPED_EARLY_FIELD_NUMBER: _ClassVar[int]
    STOPPED_EPOCH_FIELD_NUMBER: _ClassVar[int]
    STOPPED_BY_TIME_BUDGET_FIELD_NUMBER: _ClassVar[int]
    DATASET_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    artifacts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Artifact]
    evaluation: _types_pb2.EvaluationResults
    dataset_snapshot_sha256: str
    config_sha256: str
    config_text: str
    config: _struct_pb2.Struct
    versions: _types_pb2.FrameworkVersions
    seed: int
    training_seconds: float
    parameter_count: int
    epochs: int
    learning_rate: float
    average_loss: float
    class_names: _containers.RepeatedScalarFieldContainer[str]
    model_template: str
    dataset: str
    base_model_id: str
    owner: str
    display_name: str
    dataset_version: str
    split_sha256: str
    stopped_early: bool
    stopped_epoch: int
    stopped_by_time_budget: bool
    dataset_reference: str
    def __init__(self, artifacts: _Optional[_Iterable[_Union[_types_pb2.Artifact, _Mapping]]] = ..., evaluation: _Optional[_Union[_types_pb2.EvaluationResults, _Mapping]] = ..., dataset_snapshot_sha256: _Optional[str] = ..., config_sha256: _Optional[str] = ..., config_text: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., versions: _Optional[_Union[_types_pb2.FrameworkVersions, _Mapping]] = ..., seed: _Optional[int] = ..., training_seconds: _Optional[float] = ..., parameter_count: _Optional[int] = ..., epochs: _Optional[int] = ..., learning_rate: _Optional[float] = ..., average_loss: _Optional[float] = ..., class_names: _Optional[_Iterable[str]] = ..., model_template: _Optional[str] = ..., dataset: _Optional[str] = ..., base_model_id: _Optional[str] = ..., owner: _Optional[str] = ..., display_name: _Optional[str] = ..., dataset_version: _Optional[str] = ..., split_sha256: _Optional[str] = ..., stopped_early: bool = ..., stopped_epoch: _Optional[int] = ..., stopped_by_time_budget: bool = ..., dataset_reference: _Optional[str] = ...) -> None: ...

class RunFailed(_message.Message):
    __slots__ = ("failure",)
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    failure: _types_pb2.Failure
    def __init__(self, failure: _Optional[_Union[_types_pb2.Failure, _Mapping]] = ...) -> None: ...

class RunCancelled(_message.Message):
    __slots__ = ("reason", "last_checkpoint")
    REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    reason: str
    last_checkpoint: str
    def __init__(self, reason: _Optional[str] = ..., last_checkpoint: _Optional[str] = ...) -> None: ...

class ModelRegistered(_message.Message):
    __slots__ = ("trained_model_id",)
    TRAINED_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    trained_model_id: str
    def __init__(self, trained_model_id: _Optional[str] = ...) -> None: ...

class ModelRegistrationFailed(_message.Message):
    __slots__ = ("failure",)
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    failure: _types_pb2.Failure
    def __init__(self, failure: _Optional[_Union[_types_pb2.Failure, _Mapping]] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("run_id", "attempt", "time", "sequence", "started", "phase_changed", "progress", "completed", "failed", "cancelled", "model_registered", "registration_failed", "log", "state_changed")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    PHASE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    MODEL_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_FAILED_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    time: _timestamp_pb2.Timestamp
    sequence: int
    started: RunStarted
    phase_changed: PhaseChanged
    progress: ProgressReported
    completed: RunCompleted
    failed: RunFailed
    cancelled: RunCancelled
    model_registered: ModelRegistered
    registration_failed: ModelRegistrationFailed
    log: LogLines
    state_changed: StateChanged
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sequence: _Optional[int] = ..., started: _Optional[_Union[RunStarted, _Mapping]] = ..., phase_changed: _Optional[_Union[PhaseChanged, _Mapping]] = ..., progress: _Optional[_Union[ProgressReported, _Mapping]] = ..., completed: _Optional[_Union[RunCompleted, _Mapping]] = ..., failed: _Optional[_Union[RunFailed, _Mapping]] = ..., cancelled: _Optional[_Union[RunCancelled, _Mapping]] = ..., model_registered: _Optional[_Union[ModelRegistered, _Mapping]] = ..., registration_failed: _Optional[_Union[ModelRegistrationFailed, _Mapping]] = ..., log: _Optional[_Union[LogLines, _Mapping]] = ..., state_changed: _Optional[_Union[StateChanged, _Mapping]] = ...) -> None: ...

class StateChanged(_message.Message):
    __slots__ = ("from_state", "to_state", "reason")
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    from_state: _types_pb2.RunState
    to_state: _types_pb2.RunState
    reason: str
    def __init__(self, from_state: _Optional[_Union[_types_pb2.RunState, str]] = ..., to_state: _Optional[_Union[_types_pb2.RunState, str]] = ..., reason: _Optional[str] = ...) -> None: ...
