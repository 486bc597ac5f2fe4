import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Precision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRECISION_UNSPECIFIED: _ClassVar[Precision]
    FP32: _ClassVar[Precision]
    AMP_FP16: _ClassVar[Precision]
    AMP_BF16: _ClassVar[Precision]

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    PENDING: _ClassVar[RunState]
    RUNNING: _ClassVar[RunState]
    SUCCEEDED: _ClassVar[RunState]
    FAILED: _ClassVar[RunState]
    CANCELLING: _ClassVar[RunState]
    CANCELLED: _ClassVar[RunState]

class RunPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_PHASE_UNSPECIFIED: _ClassVar[RunPhase]
    PREPARING_DATASET: _ClassVar[RunPhase]
    TRAINING: _ClassVar[RunPhase]
    EVALUATING: _ClassVar[RunPhase]
    UPLOADING: _ClassVar[RunPhase]

class FailureKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_KIND_UNSPECIFIED: _ClassVar[FailureKind]
    INVALID_DATASET: _ClassVar[FailureKind]
    INVALID_CONFIG: _ClassVar[FailureKind]
    OUT_OF_MEMORY: _ClassVar[FailureKind]
    WORKER_LOST: _ClassVar[FailureKind]
    CHILD_CRASHED: _ClassVar[FailureKind]
    INTERNAL_ERROR: _ClassVar[FailureKind]
    ARTIFACT_MISMATCH: _ClassVar[FailureKind]
    TIMED_OUT: _ClassVar[FailureKind]

class ArtifactKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARTIFACT_KIND_UNSPECIFIED: _ClassVar[ArtifactKind]
    CHECKPOINT: _ClassVar[ArtifactKind]
    CONFIG: _ClassVar[ArtifactKind]
    METRICS: _ClassVar[ArtifactKind]
    LOG: _ClassVar[ArtifactKind]
    CURVES: _ClassVar[ArtifactKind]
    SPLIT_MANIFEST: _ClassVar[ArtifactKind]
    DATASET_SNAPSHOT: _ClassVar[ArtifactKind]
    PREDICTIONS: _ClassVar[ArtifactKind]
    EVALUATION_ANALYSIS: _ClassVar[ArtifactKind]
    CONFUSION_MATRIX: _ClassVar[ArtifactKind]
    PR_CURVES: _ClassVar[ArtifactKind]
    PREDICTION_GALLERY: _ClassVar[ArtifactKind]
PRECISION_UNSPECIFIED: Precision
FP32: Precision
AMP_FP16: Precision
AMP_BF16: Precision
RUN_STATE_UNSPECIFIED: RunState
PENDING: RunState
RUNNING: RunState
SUCCEEDED: RunState
FAILED: RunState
CANCELLING: RunState
CANCELLED: RunState
RUN_PHASE_UNSPECIFIED: RunPhase
PREPARING_DATASET: RunPhase
TRAINING: RunPhase
EVALUATING: RunPhase
UPLOADING: RunPhase
FAILURE_KIND_UNSPECIFIED: FailureKind
INVALID_DATASET: FailureKind
INVALID_CONFIG: FailureKind
OUT_OF_MEMORY: FailureKind
WORKER_LOST: FailureKind
CHILD_CRASHED: FailureKind
INTERNAL_ERROR: FailureKind
ARTIFACT_MISMATCH: FailureKind
TIMED_OUT: FailureKind
ARTIFACT_KIND_UNSPECIFIED: ArtifactKind
CHECKPOINT: ArtifactKind
CONFIG: ArtifactKind
METRICS: ArtifactKind
LOG: ArtifactKind
CURVES: ArtifactKind
SPLIT_MANIFEST: ArtifactKind
DATASET_SNAPSHOT: ArtifactKind
PREDICTIONS: ArtifactKind
EVALUATION_ANALYSIS: ArtifactKind
CONFUSION_MATRIX: ArtifactKind
PR_CURVES: ArtifactKind
PREDICTION_GALLERY: ArtifactKind

class Hyperparameters(_message.Message):
    __slots__ = ("epochs", "batch_size", "learning_rate", "frozen_stages", "image_size", "seed", "val_interval", "max_attempts", "train_fraction", "val_fraction", "gpus", "early_stopping", "tiling", "precision", "auto_scale_lr")
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    FROZEN_STAGES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    VAL_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FRACTION_FIELD_NUMBER: _ClassVar[int]
    VAL_FRACTION_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_FIELD_NUMBER: _ClassVar[int]
    TILING_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    AUTO_SCALE_LR_FIELD_NUMBER: _ClassVar[int]
    epochs: int
    batch_size: int
    learning_rate: float
    frozen_stages: int
    image_size: int
    seed: int
    val_interval: int
    max_attempts: int
    train_fraction: float
    val_fraction: float
    gpus: int
    early_stopping: EarlyStopping
    tiling: Tiling
    precision: Precision
    auto_scale_lr: bool
    def __init__(self, epochs: _Optional[int] = ..., batch_size: _Optional[int] = ..., learning_rate: _Optional[float] = ..., frozen_stages: _Optional[int] = ..., image_size: _Optional[int] = ..., seed: _Optional[int] = ..., val_interval: _Optional[int] = ..., max_attempts: _Optional[int] = ..., train_fraction: _Optional[float] = ..., val_fraction: _Optional[float] = ..., gpus: _Optional[int] = ..., early_stopping: _Optional[_Union[EarlyStopping, _Mapping]] = ..., tiling: _Optional[_Union[Tiling, _Mapping]] = ..., precision: _Optional[_Union[Precision, str]] = ..., auto_scale_lr: bool = ...) -> None: ...

class EarlyStopping(_message.Message):
    __slots__ = ("patience", "min_delta")
    PATIENCE_FIELD_NUMBER: _ClassVar[int]
    MIN_DELTA_FIELD_NUMBER: _ClassVar[int]
    patience: int
    min_delta: float
    def __init__(self, patience: _Optional[int] = ..., min_delta: _Optional[float] = ...) -> None: ...

class Tiling(_message.Message):
    __slots__ = ("tile_size", "overlap", "min_box_visibility")
    TILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    MIN_BOX_VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    tile_size: int
    overlap: int
    min_box_visibility: float
    def __init__(self, tile_size: _Optional[int] = ..., overlap: _Optional[int] = ..., min_box_visibility: _Optional[float] = ...) -> None: ...

class SlicedInference(_message.Message):
    __slots__ = ("sliced", "tile_size", "overlap")
    SLICED_FIELD_NUMBER: _ClassVar[int]
    TILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    sliced: bool
    tile_size: int
    overlap: int
    def __init__(self, sliced: bool = ..., tile_size: _Optional[int] = ..., overlap: _Optional[int] = ...) -> None: ...

class Failure(_message.Message):
    __slots__ = ("kind", "message", "details")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    kind: FailureKind
    message: str
    details: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[_Union[FailureKind, str]] = ..., message: _Optional[str] = ..., details: _Optional[_Iterable[str]] = ...) -> None: ...

class Loss(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class MetricValue(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class ProgressSnapshot(_message.Message):
    __slots__ = ("phase", "epoch", "max_epochs", "iter", "max_iters", "losses", "learning_rate", "eta", "val_metrics", "update_time")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MAX_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    ITER_FIELD_NUMBER: _ClassVar[int]
    MAX_ITERS_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    VAL_METRICS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    phase: RunPhase
    epoch: int
    max_epochs: int
    iter: int
    max_iters: int
    losses: _containers.RepeatedCompositeFieldContainer[Loss]
    learning_rate: float
    eta: _duration_pb2.Duration
    val_metrics: _containers.RepeatedCompositeFieldContainer[MetricValue]
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, phase: _Optional[_Union[RunPhase, str]] = ..., epoch: _Optional[int] = ..., max_epochs: _Optional[int] = ..., iter: _Optional[int] = ..., max_iters: _Optional[int] = ..., losses: _Optional[_Iterable[_Union[Loss, _Mapping]]] = ..., learning_rate: _Optional[float] = ..., eta: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., val_metrics: _Optional[_Iterable[_Union[MetricValue, _Mapping]]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("kind", "uri", "size_bytes", "sha256")
    KIND_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    kind: ArtifactKind
    uri: str
    size_bytes: int
    sha256: str
    def __init__(self, kind: _Optional[_Union[ArtifactKind, str]] = ..., uri: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class ClassAP(_message.Message):
    __slots__ = ("class_name", "ap", "recommended_score_threshold")
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    AP_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    class_name: str
    ap: float
    recommended_score_threshold: float
    def __init__(self, class_name: _Optional[str] = ..., ap: _Optional[float] = ..., recommended_score_threshold: _Optional[float] = ...) -> None: ...

class EpochMetrics(_message.Message):
    __slots__ = ("epoch", "bbox_map", "bbox_map_50", "train_loss")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    BBOX_MAP_FIELD_NUMBER: _ClassVar[int]
    BBOX_MAP_50_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    bbox_map: float
    bbox_map_50: float
    train_loss: float
    def __init__(self, epoch: _Optional[int] = ..., bbox_map: _Optional[float] = ..., bbox_map_50: _Optional[float] = ..., train_loss: _Optional[float] = ...) -> None: ...

class DetectionMetrics(_message.Message):
    __slots__ = ("bbox_map", "bbox_map_50", "bbox_map_75", "bbox_map_s", "bbox_map_m", "bbox_map_l", "per_class_ap")
    BBOX_MAP_FIELD_NUMBER: _ClassVar[int]
    BBOX_MAP_50_FIELD_NUMBER: _ClassVar[int]
    BBOX_MAP_75_FIELD_NUMBER: _ClassVar[int]
    BBOX_MAP_S_FIELD_NUMBER: _ClassVar[int]
    BBOX_MAP_M_FIELD_NUMBER: _ClassVar[int]
    BBOX_MAP_L_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_AP_FIELD_NUMBER: _ClassVar[int]
    bbox_map: float
    bbox_map_50: float
    bbox_map_75: float
    bbox_map_s: float
    bbox_map_m: float
    bbox_map_l: float
    per_class_ap: _containers.RepeatedCompositeFieldContainer[ClassAP]
    def __init__(self, bbox_map: _Optional[float] = ..., bbox_map_50: _Optional[float] = ..., bbox_map_75: _Optional[float] = ..., bbox_map_s: _Optional[float] = ..., bbox_map_m: _Optional[float] = ..., bbox_map_l: _Optional[float] = ..., per_class_ap: _Optional[_Iterable[_Union[ClassAP, _Mapping]]] = ...) -> None: ...

class EvaluationResults(_message.Message):
    __slots__ = ("val", "test", "best_epoch", "history")
    VAL_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    BEST_EPOCH_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    val: DetectionMetrics
    test: DetectionMetrics
    best_epoch: int
    history: _containers.RepeatedCompositeFieldContainer[EpochMetrics]
    def __init__(self, val: _Optional[_Union[DetectionMetrics, _Mapping]] = ..., test: _Optional[_Union[DetectionMetrics, _Mapping]] = ..., best_epoch: _Optional[int] = ..., history: _Optional[_Iterable[_Union[EpochMetrics, _Mapping]]] = ...) -> None: ...

class FrameworkVersions(_message.Message):
    __slots__ = ("torch", "mmcv", "mmdet", "mmengine", "python", "device")
    TORCH_FIELD_NUMBER: _ClassVar[int]
    MMCV_FIELD_NUMBER: _ClassVar[int]
    MMDET_FIELD_NUMBER: _ClassVar[int]
    MMENGINE_FIELD_NUMBER: _ClassVar[int]
    PYTHON_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    torch: str
    mmcv: str
    mmdet: str
    mmengine: str
    python: str
    device: str
    def __init__(self, torch: _Optional[str] = ..., mmcv: _Optional[str] = ..., mmdet: _Optional[str] = ..., mmengine: _Optional[str] = ..., python: _Optional[str] = ..., device: _Optional[str] = ...) -> None: ...
