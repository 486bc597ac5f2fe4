import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from common.proto.raven.v1 import types_pb2 as _types_pb2
from common.proto.raven.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EvaluationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVALUATION_STATE_UNSPECIFIED: _ClassVar[EvaluationState]
    EVALUATION_STATE_PENDING: _ClassVar[EvaluationState]
    EVALUATION_STATE_RUNNING: _ClassVar[EvaluationState]
    EVALUATION_STATE_SUCCEEDED: _ClassVar[EvaluationState]
    EVALUATION_STATE_FAILED: _ClassVar[EvaluationState]
    EVALUATION_STATE_CANCELLED: _ClassVar[EvaluationState]
EVALUATION_STATE_UNSPECIFIED: EvaluationState
EVALUATION_STATE_PENDING: EvaluationState
EVALUATION_STATE_RUNNING: EvaluationState
EVALUATION_STATE_SUCCEEDED: EvaluationState
EVALUATION_STATE_FAILED: EvaluationState
EVALUATION_STATE_CANCELLED: EvaluationState

class EvaluationProgress(_message.Message):
    __slots__ = ("step", "done", "total", "update_time")
    STEP_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    step: str
    done: int
    total: int
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, step: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Evaluation(_message.Message):
    __slots__ = ("name", "trained_model", "dataset_version", "split", "state", "progress", "metrics", "artifacts", "failure", "owner", "create_time", "update_time", "end_time", "split_sha256", "dataset", "training_run", "attempt", "worker_id", "cancel_reason", "inference")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TRAINED_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SPLIT_SHA256_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    trained_model: str
    dataset_version: str
    split: str
    state: EvaluationState
    progress: EvaluationProgress
    metrics: _types_pb2.DetectionMetrics
    artifacts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Artifact]
    failure: _types_pb2.Failure
    owner: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    split_sha256: str
    dataset: str
    training_run: str
    attempt: int
    worker_id: str
    cancel_reason: str
    inference: EvaluationInference
    def __init__(self, name: _Optional[str] = ..., trained_model: _Optional[str] = ..., dataset_version: _Optional[str] = ..., split: _Optional[str] = ..., state: _Optional[_Union[EvaluationState, str]] = ..., progress: _Optional[_Union[EvaluationProgress, _Mapping]] = ..., metrics: _Optional[_Union[_types_pb2.DetectionMetrics, _Mapping]] = ..., artifacts: _Optional[_Iterable[_Union[_types_pb2.Artifact, _Mapping]]] = ..., failure: _Optional[_Union[_types_pb2.Failure, _Mapping]] = ..., owner: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., split_sha256: _Optional[str] = ..., dataset: _Optional[str] = ..., training_run: _Optional[str] = ..., attempt: _Optional[int] = ..., worker_id: _Optional[str] = ..., cancel_reason: _Optional[str] = ..., inference: _Optional[_Union[EvaluationInference, _Mapping]] = ...) -> None: ...

class EvaluationInference(_message.Message):
    __slots__ = ("sliced", "tile_size", "overlap", "merge", "merge_iou_threshold", "merge_candidates", "max_per_image", "score_threshold")
    SLICED_FIELD_NUMBER: _ClassVar[int]
    TILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    MERGE_FIELD_NUMBER: _ClassVar[int]
    MERGE_IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MERGE_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    sliced: bool
    tile_size: int
    overlap: int
    merge: str
    merge_iou_threshold: float
    merge_candidates: int
    max_per_image: int
    score_threshold: float
    def __init__(self, sliced: bool = ..., tile_size: _Optional[int] = ..., overlap: _Optional[int] = ..., merge: _Optional[str] = ..., merge_iou_threshold: _Optional[float] = ..., merge_candidates: _Optional[int] = ..., max_per_image: _Optional[int] = ..., score_threshold: _Optional[float] = ...) -> None: ...

class CreateEvaluationRequest(_message.Message):
    __slots__ = ("trained_model", "dataset_version", "split", "request_id")
    TRAINED_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    trained_model: str
    dataset_version: str
    split: str
    request_id: str
    def __init__(self, trained_model: _Optional[str] = ..., dataset_version: _Optional[str] = ..., split: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetEvaluationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListEvaluationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "trained_model", "dataset_version", "split", "states")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TRAINED_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    trained_model: str
    dataset_version: str
    split: str
    states: _containers.RepeatedScalarFieldContainer[EvaluationState]
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., trained_model: _Optional[str] = ..., dataset_version: _Optional[str] = ..., split: _Optional[str] = ..., states: _Optional[_Iterable[_Union[EvaluationState, str]]] = ...) -> None: ...

class ListEvaluationsResponse(_message.Message):
    __slots__ = ("evaluations", "next_page_token", "total_size")
    EVALUATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    evaluations: _containers.RepeatedCompositeFieldContainer[Evaluation]
    next_page_token: str
    total_size: int
    def __init__(self, evaluations: _Optional[_Iterable[_Union[Evaluation, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class WatchEvaluationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelEvaluationRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EvaluationJob(_message.Message):
    __slots__ = ("evaluation_id", "trained_model", "checkpoint", "config", "class_names", "split", "dataset_version", "owner")
    EVALUATION_ID_FIELD_NUMBER: _ClassVar[int]
    TRAINED_MODEL_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    evaluation_id: str
    trained_model: str
    checkpoint: _types_pb2.Artifact
    config: _struct_pb2.Struct
    class_names: _containers.RepeatedScalarFieldContainer[str]
    split: str
    dataset_version: _events_pb2.TrainingDatasetVersion
    owner: str
    def __init__(self, evaluation_id: _Optional[str] = ..., trained_model: _Optional[str] = ..., checkpoint: _Optional[_Union[_types_pb2.Artifact, _Mapping]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., class_names: _Optional[_Iterable[str]] = ..., split: _Optional[str] = ..., dataset_version: _Optional[_Union[_events_pb2.TrainingDatasetVersion, _Mapping]] = ..., owner: _Optional[str] = ...) -> None: ...

class EvaluationStarted(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class EvaluationCompleted(_message.Message):
    __slots__ = ("metrics", "artifacts", "inference")
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_FIELD_NUMBER: _ClassVar[int]
    metrics: _types_pb2.DetectionMetrics
    artifacts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Artifact]
    inference: EvaluationInference
    def __init__(self, metrics: _Optional[_Union[_types_pb2.DetectionMetrics, _Mapping]] = ..., artifacts: _Optional[_Iterable[_Union[_types_pb2.Artifact, _Mapping]]] = ..., inference: _Optional[_Union[EvaluationInference, _Mapping]] = ...) -> None: ...

class EvaluationFailed(_message.Message):
    __slots__ = ("failure",)
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    failure: _types_pb2.Failure
    def __init__(self, failure: _Optional[_Union[_types_pb2.Failure, _Mapping]] = ...) -> None: ...

class EvaluationEvent(_message.Message):
    __slots__ = ("evaluation_id", "attempt", "time", "started", "progress", "completed", "failed")
    EVALUATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    evaluation_id: str
    attempt: int
    time: _timestamp_pb2.Timestamp
    started: EvaluationStarted
    progress: EvaluationProgress
    completed: EvaluationCompleted
    failed: EvaluationFailed
    def __init__(self, evaluation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started: _Optional[_Union[EvaluationStarted, _Mapping]] = ..., progress: _Optional[_Union[EvaluationProgress, _Mapping]] = ..., completed: _Optional[_Union[EvaluationCompleted, _Mapping]] = ..., failed: _Optional[_Union[EvaluationFailed, _Mapping]] = ...) -> None: ...
