import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from common.proto.raven.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DatasetVersionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATASET_VERSION_STATE_UNSPECIFIED: _ClassVar[DatasetVersionState]
    DATASET_VERSION_STATE_PENDING: _ClassVar[DatasetVersionState]
    DATASET_VERSION_STATE_PREPARING: _ClassVar[DatasetVersionState]
    DATASET_VERSION_STATE_READY: _ClassVar[DatasetVersionState]
    DATASET_VERSION_STATE_INVALID: _ClassVar[DatasetVersionState]

class ArchiveFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARCHIVE_FORMAT_UNSPECIFIED: _ClassVar[ArchiveFormat]
    ARCHIVE_FORMAT_ZIP: _ClassVar[ArchiveFormat]
    ARCHIVE_FORMAT_TAR: _ClassVar[ArchiveFormat]

class SplitOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPLIT_ORIGIN_UNSPECIFIED: _ClassVar[SplitOrigin]
    SPLIT_ORIGIN_COMPUTED: _ClassVar[SplitOrigin]
    SPLIT_ORIGIN_DATASET: _ClassVar[SplitOrigin]

class DatasetPreparationStep(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATASET_PREPARATION_STEP_UNSPECIFIED: _ClassVar[DatasetPreparationStep]
    DATASET_PREPARATION_STEP_VERIFYING: _ClassVar[DatasetPreparationStep]
    DATASET_PREPARATION_STEP_VALIDATING: _ClassVar[DatasetPreparationStep]
    DATASET_PREPARATION_STEP_HASHING: _ClassVar[DatasetPreparationStep]
    DATASET_PREPARATION_STEP_SPLITTING: _ClassVar[DatasetPreparationStep]
    DATASET_PREPARATION_STEP_PROFILING: _ClassVar[DatasetPreparationStep]
DATASET_VERSION_STATE_UNSPECIFIED: DatasetVersionState
DATASET_VERSION_STATE_PENDING: DatasetVersionState
DATASET_VERSION_STATE_PREPARING: DatasetVersionState
DATASET_VERSION_STATE_READY: DatasetVersionState
DATASET_VERSION_STATE_INVALID: DatasetVersionState
ARCHIVE_FORMAT_UNSPECIFIED: ArchiveFormat
ARCHIVE_FORMAT_ZIP: ArchiveFormat
ARCHIVE_FORMAT_TAR: ArchiveFormat
SPLIT_ORIGIN_UNSPECIFIED: SplitOrigin
SPLIT_ORIGIN_COMPUTED: SplitOrigin
SPLIT_ORIGIN_DATASET: SplitOrigin
DATASET_PREPARATION_STEP_UNSPECIFIED: DatasetPreparationStep
DATASET_PREPARATION_STEP_VERIFYING: DatasetPreparationStep
DATASET_PREPARATION_STEP_VALIDATING: DatasetPreparationStep
DATASET_PREPARATION_STEP_HASHING: DatasetPreparationStep
DATASET_PREPARATION_STEP_SPLITTING: DatasetPreparationStep
DATASET_PREPARATION_STEP_PROFILING: DatasetPreparationStep

class Dataset(_message.Message):
    __slots__ = ("name", "display_name", "description", "owner", "version_count", "latest_version", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    VERSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    description: str
    owner: str
    version_count: int
    latest_version: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., owner: _Optional[str] = ..., version_count: _Optional[int] = ..., latest_version: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SplitOptions(_message.Message):
    __slots__ = ("train_fraction", "val_fraction", "seed")
    TRAIN_FRACTION_FIELD_NUMBER: _ClassVar[int]
    VAL_FRACTION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    train_fraction: float
    val_fraction: float
    seed: int
    def __init__(self, train_fraction: _Optional[float] = ..., val_fraction: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class DatasetUpload(_message.Message):
    __slots__ = ("size_bytes", "sha256", "format")
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    size_bytes: int
    sha256: str
    format: ArchiveFormat
    def __init__(self, size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., format: _Optional[_Union[ArchiveFormat, str]] = ...) -> None: ...

class DatasetProblem(_message.Message):
    __slots__ = ("file", "field", "description")
    FILE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    file: str
    field: str
    description: str
    def __init__(self, file: _Optional[str] = ..., field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class SplitCount(_message.Message):
    __slots__ = ("split", "images", "annotations", "groups")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    split: str
    images: int
    annotations: int
    groups: int
    def __init__(self, split: _Optional[str] = ..., images: _Optional[int] = ..., annotations: _Optional[int] = ..., groups: _Optional[int] = ...) -> None: ...

class SplitSummary(_message.Message):
    __slots__ = ("origin", "options", "splits", "group_key", "leaks_found", "leaks_moved")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    GROUP_KEY_FIELD_NUMBER: _ClassVar[int]
    LEAKS_FOUND_FIELD_NUMBER: _ClassVar[int]
    LEAKS_MOVED_FIELD_NUMBER: _ClassVar[int]
    origin: SplitOrigin
    options: SplitOptions
    splits: _containers.RepeatedCompositeFieldContainer[SplitCount]
    group_key: str
    leaks_found: int
    leaks_moved: int
    def __init__(self, origin: _Optional[_Union[SplitOrigin, str]] = ..., options: _Optional[_Union[SplitOptions, _Mapping]] = ..., splits: _Optional[_Iterable[_Union[SplitCount, _Mapping]]] = ..., group_key: _Optional[str] = ..., leaks_found: _Optional[int] = ..., leaks_moved: _Optional[int] = ...) -> None: ...

class NearDuplicateGroup(_message.Message):
    __slots__ = ("files", "splits", "max_distance", "exact", "resolved_split")
    FILES_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    MAX_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_SPLIT_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedScalarFieldContainer[str]
    splits: _containers.RepeatedScalarFieldContainer[str]
    max_distance: int
    exact: bool
    resolved_split: str
    def __init__(self, files: _Optional[_Iterable[str]] = ..., splits: _Optional[_Iterable[str]] = ..., max_distance: _Optional[int] = ..., exact: bool = ..., resolved_split: _Optional[str] = ...) -> None: ...

class HistogramBin(_message.Message):
    __slots__ = ("label", "lower", "upper", "count")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    label: str
    lower: float
    upper: float
    count: int
    def __init__(self, label: _Optional[str] = ..., lower: _Optional[float] = ..., upper: _Optional[float] = ..., count: _Optional[int] = ...) -> None: ...

class ClassProfile(_message.Message):
    __slots__ = ("class_name", "category_id", "images", "annotations", "splits")
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    class_name: str
    category_id: int
    images: int
    annotations: int
    splits: _containers.RepeatedCompositeFieldContainer[SplitCount]
    def __init__(self, class_name: _Optional[str] = ..., category_id: _Optional[int] = ..., images: _Optional[int] = ..., annotations: _Optional[int] = ..., splits: _Optional[_Iterable[_Union[SplitCount, _Mapping]]] = ...) -> None: ...

class ImageSizeCount(_message.Message):
    __slots__ = ("width", "height", "images")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    images: int
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., images: _Optional[int] = ...) -> None: ...

class DistributionSummary(_message.Message):
    __slots__ = ("min", "max", "mean", "median")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_FIELD_NUMBER: _ClassVar[int]
    min: float
    max: float
    mean: float
    median: float
    def __init__(self, min: _Optional[float] = ..., max: _Optional[float] = ..., mean: _Optional[float] = ..., median: _Optional[float] = ...) -> None: ...

class DatasetProfile(_message.Message):
    __slots__ = ("images", "annotations", "splits", "classes", "image_sizes", "image_widths", "image_heights", "box_sizes", "coco_box_sizes", "boxes_per_image", "boxes_per_image_histogram", "empty_images", "near_duplicates_found", "leaks_found", "exif_rotated_images", "recommendation", "reference_input_size", "recommended_tile_size")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTHS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHTS_FIELD_NUMBER: _ClassVar[int]
    BOX_SIZES_FIELD_NUMBER: _ClassVar[int]
    COCO_BOX_SIZES_FIELD_NUMBER: _ClassVar[int]
    BOXES_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    BOXES_PER_IMAGE_HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    EMPTY_IMAGES_FIELD_NUMBER: _ClassVar[int]
    NEAR_DUPLICATES_FOUND_FIELD_NUMBER: _ClassVar[int]
    LEAKS_FOUND_FIELD_NUMBER: _ClassVar[int]
    EXIF_ROTATED_IMAGES_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_TILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    images: int
    annotations: int
    splits: _containers.RepeatedCompositeFieldContainer[SplitCount]
    classes: _containers.RepeatedCompositeFieldContainer[ClassProfile]
    image_sizes: _containers.RepeatedCompositeFieldContainer[ImageSizeCount]
    image_widths: DistributionSummary
    image_heights: DistributionSummary
    box_sizes: _containers.RepeatedCompositeFieldContainer[HistogramBin]
    coco_box_sizes: _containers.RepeatedCompositeFieldContainer[HistogramBin]
    boxes_per_image: DistributionSummary
    boxes_per_image_histogram: _containers.RepeatedCompositeFieldContainer[HistogramBin]
    empty_images: int
    near_duplicates_found: int
    leaks_found: int
    exif_rotated_images: int
    recommendation: str
    reference_input_size: int
    recommended_tile_size: int
    def __init__(self, images: _Optional[int] = ..., annotations: _Optional[int] = ..., splits: _Optional[_Iterable[_Union[SplitCount, _Mapping]]] = ..., classes: _Optional[_Iterable[_Union[ClassProfile, _Mapping]]] = ..., image_sizes: _Optional[_Iterable[_Union[ImageSizeCount, _Mapping]]] = ..., image_widths: _Optional[_Union[DistributionSummary, _Mapping]] = ..., image_heights: _Optional[_Union[DistributionSummary, _Mapping]] = ..., box_sizes: _Optional[_Iterable[_Union[HistogramBin, _Mapping]]] = ..., coco_box_sizes: _Optional[_Iterable[_Union[HistogramBin, _Mapping]]] = ..., boxes_per_image: _Optional[_Union[DistributionSummary, _Mapping]] = ..., boxes_per_image_histogram: _Optional[_Iterable[_Union[HistogramBin, _Mapping]]] = ..., empty_images: _Optional[int] = ..., near_duplicates_found: _Optional[int] = ..., leaks_found: _Optional[int] = ..., exif_rotated_images: _Optional[int] = ..., recommendation: _Optional[str] = ..., reference_input_size: _Optional[int] = ..., recommended_tile_size: _Optional[int] = ...) -> None: ...

class DatasetVersionProgress(_message.Message):
    __slots__ = ("step", "done", "total", "update_time")
    STEP_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    step: DatasetPreparationStep
    done: int
    total: int
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, step: _Optional[_Union[DatasetPreparationStep, str]] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DatasetVersion(_message.Message):
    __slots__ = ("name", "description", "state", "source_uri", "upload", "split_options", "snapshot_sha256", "file_manifest", "file_count", "size_bytes", "split_sha256", "split_manifest", "split", "profile", "problems", "problem_count", "failure", "near_duplicate_groups", "progress", "owner", "create_time", "update_time", "ready_time", "version_number")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URI_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    SPLIT_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_SHA256_FIELD_NUMBER: _ClassVar[int]
    FILE_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SPLIT_SHA256_FIELD_NUMBER: _ClassVar[int]
    SPLIT_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    NEAR_DUPLICATE_GROUPS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    READY_TIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    state: DatasetVersionState
    source_uri: str
    upload: DatasetUpload
    split_options: SplitOptions
    snapshot_sha256: str
    file_manifest: _types_pb2.Artifact
    file_count: int
    size_bytes: int
    split_sha256: str
    split_manifest: _types_pb2.Artifact
    split: SplitSummary
    profile: DatasetProfile
    problems: _containers.RepeatedCompositeFieldContainer[DatasetProblem]
    problem_count: int
    failure: _types_pb2.Failure
    near_duplicate_groups: _containers.RepeatedCompositeFieldContainer[NearDuplicateGroup]
    progress: DatasetVersionProgress
    owner: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    ready_time: _timestamp_pb2.Timestamp
    version_number: int
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., state: _Optional[_Union[DatasetVersionState, str]] = ..., source_uri: _Optional[str] = ..., upload: _Optional[_Union[DatasetUpload, _Mapping]] = ..., split_options: _Optional[_Union[SplitOptions, _Mapping]] = ..., snapshot_sha256: _Optional[str] = ..., file_manifest: _Optional[_Union[_types_pb2.Artifact, _Mapping]] = ..., file_count: _Optional[int] = ..., size_bytes: _Optional[int] = ..., split_sha256: _Optional[str] = ..., split_manifest: _Optional[_Union[_types_pb2.Artifact, _Mapping]] = ..., split: _Optional[_Union[SplitSummary, _Mapping]] = ..., profile: _Optional[_Union[DatasetProfile, _Mapping]] = ..., problems: _Optional[_Iterable[_Union[DatasetProblem, _Mapping]]] = ..., problem_count: _Optional[int] = ..., failure: _Optional[_Union[_types_pb2.Failure, _Mapping]] = ..., near_duplicate_groups: _Optional[_Iterable[_Union[NearDuplicateGroup, _Mapping]]] = ..., progress: _Optional[_Union[DatasetVersionProgress, _Mapping]] = ..., owner: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ready_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version_number: _Optional[int] = ...) -> None: ...

class CreateDatasetRequest(_message.Message):
    __slots__ = ("dataset", "request_id")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    request_id: str
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "next_page_token", "total_size")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    next_page_token: str
    total_size: int
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateDatasetVersionRequest(_message.Message):
    __slots__ = ("parent", "dataset_version", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    dataset_version: DatasetVersion
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., dataset_version: _Optional[_Union[DatasetVersion, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetDatasetVersionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListDatasetVersionsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "states")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    states: _containers.RepeatedScalarFieldContainer[DatasetVersionState]
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., states: _Optional[_Iterable[_Union[DatasetVersionState, str]]] = ...) -> None: ...

class ListDatasetVersionsResponse(_message.Message):
    __slots__ = ("dataset_versions", "next_page_token", "total_size")
    DATASET_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    dataset_versions: _containers.RepeatedCompositeFieldContainer[DatasetVersion]
    next_page_token: str
    total_size: int
    def __init__(self, dataset_versions: _Optional[_Iterable[_Union[DatasetVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class DeleteDatasetVersionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchDatasetVersionRequest(_message.Message):
    __slots__ = ("name", "resume_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    resume_token: str
    def __init__(self, name: _Optional[str] = ..., resume_token: _Optional[str] = ...) -> None: ...

class WatchDatasetVersionResponse(_message.Message):
    __slots__ = ("event", "resume_token", "dataset_version")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    event: DatasetVersionEvent
    resume_token: str
    dataset_version: DatasetVersion
    def __init__(self, event: _Optional[_Union[DatasetVersionEvent, _Mapping]] = ..., resume_token: _Optional[str] = ..., dataset_version: _Optional[_Union[DatasetVersion, _Mapping]] = ...) -> None: ...

class UploadDatasetVersionMetadata(_message.Message):
    __slots__ = ("parent", "dataset_version", "size_bytes", "sha256", "format", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    dataset_version: DatasetVersion
    size_bytes: int
    sha256: str
    format: ArchiveFormat
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., dataset_version: _Optional[_Union[DatasetVersion, _Mapping]] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., format: _Optional[_Union[ArchiveFormat, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class UploadDatasetVersionRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: UploadDatasetVersionMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[UploadDatasetVersionMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class DatasetSplitFile(_message.Message):
    __slots__ = ("split", "annotations_file")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FILE_FIELD_NUMBER: _ClassVar[int]
    split: str
    annotations_file: str
    def __init__(self, split: _Optional[str] = ..., annotations_file: _Optional[str] = ...) -> None: ...

class DatasetPreparationJob(_message.Message):
    __slots__ = ("dataset_version", "attempt", "file_manifest", "blob_prefix", "snapshot_sha256", "annotations_file", "own_split", "split_options", "reference_input_size", "owner", "create_time", "output_prefix")
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FILE_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    BLOB_PREFIX_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_SHA256_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FILE_FIELD_NUMBER: _ClassVar[int]
    OWN_SPLIT_FIELD_NUMBER: _ClassVar[int]
    SPLIT_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    dataset_version: str
    attempt: int
    file_manifest: _types_pb2.Artifact
    blob_prefix: str
    snapshot_sha256: str
    annotations_file: str
    own_split: _containers.RepeatedCompositeFieldContainer[DatasetSplitFile]
    split_options: SplitOptions
    reference_input_size: int
    owner: str
    create_time: _timestamp_pb2.Timestamp
    output_prefix: str
    def __init__(self, dataset_version: _Optional[str] = ..., attempt: _Optional[int] = ..., file_manifest: _Optional[_Union[_types_pb2.Artifact, _Mapping]] = ..., blob_prefix: _Optional[str] = ..., snapshot_sha256: _Optional[str] = ..., annotations_file: _Optional[str] = ..., own_split: _Optional[_Iterable[_Union[DatasetSplitFile, _Mapping]]] = ..., split_options: _Optional[_Union[SplitOptions, _Mapping]] = ..., reference_input_size: _Optional[int] = ..., owner: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., output_prefix: _Optional[str] = ...) -> None: ...

class DatasetPreparationStarted(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class DatasetPreparationProgressed(_message.Message):
    __slots__ = ("progress",)
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    progress: DatasetVersionProgress
    def __init__(self, progress: _Optional[_Union[DatasetVersionProgress, _Mapping]] = ...) -> None: ...

class DatasetPreparationCompleted(_message.Message):
    __slots__ = ("problems", "problem_count", "split_manifest", "split_sha256", "split", "profile", "near_duplicate_groups")
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    SPLIT_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    SPLIT_SHA256_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    NEAR_DUPLICATE_GROUPS_FIELD_NUMBER: _ClassVar[int]
    problems: _containers.RepeatedCompositeFieldContainer[DatasetProblem]
    problem_count: int
    split_manifest: _types_pb2.Artifact
    split_sha256: str
    split: SplitSummary
    profile: DatasetProfile
    near_duplicate_groups: _containers.RepeatedCompositeFieldContainer[NearDuplicateGroup]
    def __init__(self, problems: _Optional[_Iterable[_Union[DatasetProblem, _Mapping]]] = ..., problem_count: _Optional[int] = ..., split_manifest: _Optional[_Union[_types_pb2.Artifact, _Mapping]] = ..., split_sha256: _Optional[str] = ..., split: _Optional[_Union[SplitSummary, _Mapping]] = ..., profile: _Optional[_Union[DatasetProfile, _Mapping]] = ..., near_duplicate_groups: _Optional[_Iterable[_Union[NearDuplicateGroup, _Mapping]]] = ...) -> None: ...

class DatasetPreparationFailed(_message.Message):
    __slots__ = ("failure",)
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    failure: _types_pb2.Failure
    def __init__(self, failure: _Optional[_Union[_types_pb2.Failure, _Mapping]] = ...) -> None: ...

class DatasetVersionStateChanged(_message.Message):
    __slots__ = ("from_state", "to_state", "reason")
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    from_state: DatasetVersionState
    to_state: DatasetVersionState
    reason: str
    def __init__(self, from_state: _Optional[_Union[DatasetVersionState, str]] = ..., to_state: _Optional[_Union[DatasetVersionState, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class DatasetVersionEvent(_message.Message):
    __slots__ = ("dataset_version", "attempt", "time", "sequence", "started", "progress", "completed", "failed", "state_changed")
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    dataset_version: str
    attempt: int
    time: _timestamp_pb2.Timestamp
    sequence: int
    started: DatasetPreparationStarted
    progress: DatasetPreparationProgressed
    completed: DatasetPreparationCompleted
    failed: DatasetPreparationFailed
    state_changed: DatasetVersionStateChanged
    def __init__(self, dataset_version: _Optional[str] = ..., attempt: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sequence: _Optional[int] = ..., started: _Optional[_Union[DatasetPreparationStarted, _Mapping]] = ..., progress: _Optional[_Union[DatasetPreparationProgressed, _Mapping]] = ..., completed: _Optional[_Union[DatasetPreparationCompleted, _Mapping]] = ..., failed: _Optional[_Union[DatasetPreparationFailed, _Mapping]] = ..., state_changed: _Optional[_Union[DatasetVersionStateChanged, _Mapping]] = ...) -> None: ...
