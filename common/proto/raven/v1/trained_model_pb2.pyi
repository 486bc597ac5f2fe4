import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from common.proto.raven.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelOrderBy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_ORDER_BY_UNSPECIFIED: _ClassVar[ModelOrderBy]
    CREATE_TIME_DESC: _ClassVar[ModelOrderBy]
    BBOX_MAP_DESC: _ClassVar[ModelOrderBy]
MODEL_ORDER_BY_UNSPECIFIED: ModelOrderBy
CREATE_TIME_DESC: ModelOrderBy
BBOX_MAP_DESC: ModelOrderBy

class TrainedModel(_message.Message):
    __slots__ = ("name", "display_name", "version", "description", "training_run", "base_model", "dataset", "dataset_snapshot_sha256", "class_names", "model_template", "config_text", "config", "config_sha256", "checkpoint", "artifacts", "evaluation", "training_seconds", "parameter_count", "versions", "seed", "hyperparameters", "owner", "published", "published_by", "publish_time", "create_time", "update_time", "etag", "split_sha256", "sliced_inference", "aliases", "publish_decision", "dataset_reference")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DATASET_SNAPSHOT_SHA256_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    MODEL_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SHA256_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    TRAINING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_BY_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    SPLIT_SHA256_FIELD_NUMBER: _ClassVar[int]
    SLICED_INFERENCE_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_DECISION_FIELD_NUMBER: _ClassVar[int]
    DATASET_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    version: int
    description: str
    training_run: str
    base_model: str
    dataset: str
    dataset_snapshot_sha256: str
    class_names: _containers.RepeatedScalarFieldContainer[str]
    model_template: str
    config_text: str
    config: _struct_pb2.Struct
    config_sha256: str
    checkpoint: _types_pb2.Artifact
    artifacts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Artifact]
    evaluation: _types_pb2.EvaluationResults
    training_seconds: float
    parameter_count: int
    versions: _types_pb2.FrameworkVersions
    seed: int
    hyperparameters: _types_pb2.Hyperparameters
    owner: str
    published: bool
    published_by: str
    publish_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    split_sha256: str
    sliced_inference: _types_pb2.SlicedInference
    aliases: _containers.RepeatedScalarFieldContainer[str]
    publish_decision: PublishDecision
    dataset_reference: str
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., version: _Optional[int] = ..., description: _Optional[str] = ..., training_run: _Optional[str] = ..., base_model: _Optional[str] = ..., dataset: _Optional[str] = ..., dataset_snapshot_sha256: _Optional[str] = ..., class_names: _Optional[_Iterable[str]] = ..., model_template: _Optional[str] = ..., config_text: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., config_sha256: _Optional[str] = ..., checkpoint: _Optional[_Union[_types_pb2.Artifact, _Mapping]] = ..., artifacts: _Optional[_Iterable[_Union[_types_pb2.Artifact, _Mapping]]] = ..., evaluation: _Optional[_Union[_types_pb2.EvaluationResults, _Mapping]] = ..., training_seconds: _Optional[float] = ..., parameter_count: _Optional[int] = ..., versions: _Optional[_Union[_types_pb2.FrameworkVersions, _Mapping]] = ..., seed: _Optional[int] = ..., hyperparameters: _Optional[_Union[_types_pb2.Hyperparameters, _Mapping]] = ..., owner: _Optional[str] = ..., published: bool = ..., published_by: _Optional[str] = ..., publish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., split_sha256: _Optional[str] = ..., sliced_inference: _Optional[_Union[_types_pb2.SlicedInference, _Mapping]] = ..., aliases: _Optional[_Iterable[str]] = ..., publish_decision: _Optional[_Union[PublishDecision, _Mapping]] = ..., dataset_reference: _Optional[str] = ...) -> None: ...

class PublishDecision(_message.Message):
    __slots__ = ("outcome", "champion", "dataset_version", "split_sha256", "candidate_bbox_map", "champion_bbox_map", "tolerance", "candidate_source", "message", "decided_by", "decide_time")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[PublishDecision.Outcome]
        OUTCOME_NO_CHAMPION: _ClassVar[PublishDecision.Outcome]
        OUTCOME_PASSED: _ClassVar[PublishDecision.Outcome]
        OUTCOME_FORCED: _ClassVar[PublishDecision.Outcome]
        OUTCOME_NOT_COMPARABLE: _ClassVar[PublishDecision.Outcome]
    OUTCOME_UNSPECIFIED: PublishDecision.Outcome
    OUTCOME_NO_CHAMPION: PublishDecision.Outcome
    OUTCOME_PASSED: PublishDecision.Outcome
    OUTCOME_FORCED: PublishDecision.Outcome
    OUTCOME_NOT_COMPARABLE: PublishDecision.Outcome
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPLIT_SHA256_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_BBOX_MAP_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_BBOX_MAP_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDE_TIME_FIELD_NUMBER: _ClassVar[int]
    outcome: PublishDecision.Outcome
    champion: str
    dataset_version: str
    split_sha256: str
    candidate_bbox_map: float
    champion_bbox_map: float
    tolerance: float
    candidate_source: str
    message: str
    decided_by: str
    decide_time: _timestamp_pb2.Timestamp
    def __init__(self, outcome: _Optional[_Union[PublishDecision.Outcome, str]] = ..., champion: _Optional[str] = ..., dataset_version: _Optional[str] = ..., split_sha256: _Optional[str] = ..., candidate_bbox_map: _Optional[float] = ..., champion_bbox_map: _Optional[float] = ..., tolerance: _Optional[float] = ..., candidate_source: _Optional[str] = ..., message: _Optional[str] = ..., decided_by: _Optional[str] = ..., decide_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetModelAliasRequest(_message.Message):
    __slots__ = ("name", "alias")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    name: str
    alias: str
    def __init__(self, name: _Optional[str] = ..., alias: _Optional[str] = ...) -> None: ...

class DeleteModelAliasRequest(_message.Message):
    __slots__ = ("name", "alias")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    name: str
    alias: str
    def __init__(self, name: _Optional[str] = ..., alias: _Optional[str] = ...) -> None: ...

class GetTrainedModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListTrainedModelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "display_name", "published", "base_model", "dataset", "model_template", "min_bbox_map", "order_by", "owner")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODEL_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    MIN_BBOX_MAP_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    display_name: str
    published: bool
    base_model: str
    dataset: str
    model_template: str
    min_bbox_map: float
    order_by: ModelOrderBy
    owner: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., display_name: _Optional[str] = ..., published: bool = ..., base_model: _Optional[str] = ..., dataset: _Optional[str] = ..., model_template: _Optional[str] = ..., min_bbox_map: _Optional[float] = ..., order_by: _Optional[_Union[ModelOrderBy, str]] = ..., owner: _Optional[str] = ...) -> None: ...

class ListTrainedModelsResponse(_message.Message):
    __slots__ = ("trained_models", "next_page_token", "total_size")
    TRAINED_MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    trained_models: _containers.RepeatedCompositeFieldContainer[TrainedModel]
    next_page_token: str
    total_size: int
    def __init__(self, trained_models: _Optional[_Iterable[_Union[TrainedModel, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class UpdateTrainedModelRequest(_message.Message):
    __slots__ = ("trained_model", "update_mask", "etag")
    TRAINED_MODEL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    trained_model: TrainedModel
    update_mask: _field_mask_pb2.FieldMask
    etag: str
    def __init__(self, trained_model: _Optional[_Union[TrainedModel, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class DeleteTrainedModelRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class PublishTrainedModelRequest(_message.Message):
    __slots__ = ("name", "min_bbox_map", "require_better_than_published", "force")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MIN_BBOX_MAP_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_BETTER_THAN_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    min_bbox_map: float
    require_better_than_published: bool
    force: bool
    def __init__(self, name: _Optional[str] = ..., min_bbox_map: _Optional[float] = ..., require_better_than_published: bool = ..., force: bool = ...) -> None: ...

class UnpublishTrainedModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetModelLineageRequest(_message.Message):
    __slots__ = ("name", "max_depth")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    name: str
    max_depth: int
    def __init__(self, name: _Optional[str] = ..., max_depth: _Optional[int] = ...) -> None: ...

class LineageNode(_message.Message):
    __slots__ = ("trained_model", "display_name", "version", "base_model", "training_run", "dataset", "dataset_snapshot_sha256", "bbox_map", "published", "depth", "split_sha256")
    TRAINED_MODEL_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DATASET_SNAPSHOT_SHA256_FIELD_NUMBER: _ClassVar[int]
    BBOX_MAP_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    SPLIT_SHA256_FIELD_NUMBER: _ClassVar[int]
    trained_model: str
    display_name: str
    version: int
    base_model: str
    training_run: str
    dataset: str
    dataset_snapshot_sha256: str
    bbox_map: float
    published: bool
    depth: int
    split_sha256: str
    def __init__(self, trained_model: _Optional[str] = ..., display_name: _Optional[str] = ..., version: _Optional[int] = ..., base_model: _Optional[str] = ..., training_run: _Optional[str] = ..., dataset: _Optional[str] = ..., dataset_snapshot_sha256: _Optional[str] = ..., bbox_map: _Optional[float] = ..., published: bool = ..., depth: _Optional[int] = ..., split_sha256: _Optional[str] = ...) -> None: ...

class ModelLineage(_message.Message):
    __slots__ = ("model", "ancestors", "descendants")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ANCESTORS_FIELD_NUMBER: _ClassVar[int]
    DESCENDANTS_FIELD_NUMBER: _ClassVar[int]
    model: LineageNode
    ancestors: _containers.RepeatedCompositeFieldContainer[LineageNode]
    descendants: _containers.RepeatedCompositeFieldContainer[LineageNode]
    def __init__(self, model: _Optional[_Union[LineageNode, _Mapping]] = ..., ancestors: _Optional[_Iterable[_Union[LineageNode, _Mapping]]] = ..., descendants: _Optional[_Iterable[_Union[LineageNode, _Mapping]]] = ...) -> None: ...

class ImportTrainedModelRequest(_message.Message):
    __slots__ = ("display_name", "description", "config_uri", "checkpoint_uri", "class_names", "model_template", "request_id")
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_URI_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_URI_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    MODEL_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    display_name: str
    description: str
    config_uri: str
    checkpoint_uri: str
    class_names: _containers.RepeatedScalarFieldContainer[str]
    model_template: str
    request_id: str
    def __init__(self, display_name: _Optional[str] = ..., description: _Optional[str] = ..., config_uri: _Optional[str] = ..., checkpoint_uri: _Optional[str] = ..., class_names: _Optional[_Iterable[str]] = ..., model_template: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DownloadModelArtifactRequest(_message.Message):
    __slots__ = ("name", "kind", "offset", "chunk_size", "filename")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: _types_pb2.ArtifactKind
    offset: int
    chunk_size: int
    filename: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[_types_pb2.ArtifactKind, str]] = ..., offset: _Optional[int] = ..., chunk_size: _Optional[int] = ..., filename: _Optional[str] = ...) -> None: ...

class DownloadModelArtifactResponse(_message.Message):
    __slots__ = ("data", "offset", "total_size", "sha256", "filename")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    total_size: int
    sha256: str
    filename: str
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_size: _Optional[int] = ..., sha256: _Optional[str] = ..., filename: _Optional[str] = ...) -> None: ...

class GetTrainedModelStatisticsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class TrainedModelStatistics(_message.Message):
    __slots__ = ("trained_model", "training_seconds", "parameter_count", "epochs", "learning_rate", "average_loss", "evaluation")
    TRAINED_MODEL_FIELD_NUMBER: _ClassVar[int]
    TRAINING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_LOSS_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    trained_model: str
    training_seconds: float
    parameter_count: int
    epochs: int
    learning_rate: float
    average_loss: float
    evaluation: _types_pb2.EvaluationResults
    def __init__(self, trained_model: _Optional[str] = ..., training_seconds: _Optional[float] = ..., parameter_count: _Optional[int] = ..., epochs: _Optional[int] = ..., learning_rate: _Optional[float] = ..., average_loss: _Optional[float] = ..., evaluation: _Optional[_Union[_types_pb2.EvaluationResults, _Mapping]] = ...) -> None: ...
