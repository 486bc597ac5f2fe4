"""Datasets and versions ↔ protobuf; their outbox rows (preparation job, state-change events)."""

from __future__ import annotations

from typing import Any, cast

from common.artifacts import DATASET_BLOBS_PREFIX
from common.nats_streams import StreamNames
from common.proto.raven.v1 import datasets_pb2 as pb
from common.proto.raven.v1 import types_pb2
from services.training_run.adapters.proto_mapping import failure_to_proto, timestamp
from services.training_run.domain.datasets import (
    Dataset,
    DatasetEvent,
    DatasetVersion,
    PreparationRequested,
    PreparationResult,
    RunInput,
    VersionStateChanged,
)

ARCHIVE_FORMATS = {pb.ARCHIVE_FORMAT_ZIP: "zip", pb.ARCHIVE_FORMAT_TAR: "tar"}
FORMAT_NUMBERS = {name: number for number, name in ARCHIVE_FORMATS.items()}
REFERENCE_INPUT_SIZE = 640


def dataset_to_proto(dataset: Dataset, version_count: int = 0, newest: int = 0) -> pb.Dataset:
    return pb.Dataset(
        name=dataset.name, display_name=dataset.display_name, description=dataset.description,
        owner=dataset.owner, version_count=version_count,
        latest_version=f"{dataset.name}/versions/{newest}" if newest else "",
        create_time=timestamp(dataset.create_time), update_time=timestamp(dataset.update_time),
    )  # fmt: skip


def split_options_to_proto(options: dict[str, Any]) -> pb.SplitOptions:
    return pb.SplitOptions(**options)


def version_to_proto(version: DatasetVersion, *, full: bool = True) -> pb.DatasetVersion:
    """The version as clients see it; ``full=False`` leaves out problems and near-duplicate groups (lists)."""
    snapshot = version.snapshot
    message = pb.DatasetVersion(
        name=version.name, description=version.description, state=cast(pb.DatasetVersionState, version.state),
        source_uri=version.source_uri, split_options=split_options_to_proto(version.split_options),
        snapshot_sha256=snapshot.sha256, file_count=snapshot.file_count, size_bytes=snapshot.size_bytes,
        file_manifest=types_pb2.Artifact(
            kind=types_pb2.DATASET_SNAPSHOT, uri=snapshot.manifest_key, size_bytes=snapshot.manifest_size,
            sha256=snapshot.manifest_sha256,
        ),
        owner=version.owner, create_time=timestamp(version.create_time),
        update_time=timestamp(version.update_time), ready_time=timestamp(version.ready_time),
        version_number=version.number,
    )  # fmt: skip
    if version.upload:
        message.upload.CopyFrom(
            pb.DatasetUpload(
                size_bytes=int(version.upload["size_bytes"]), sha256=str(version.upload["sha256"]),
                format=cast(pb.ArchiveFormat, FORMAT_NUMBERS[str(version.upload["format"])]),
            )
        )  # fmt: skip
    if version.progress and not version.state.final:
        message.progress.ParseFromString(version.progress)
    if version.failure is not None:
        message.failure.CopyFrom(failure_to_proto(version.failure))
    if version.result is not None:
        _merge_result(message, version.result, full)
    return message


def _merge_result(message: pb.DatasetVersion, result: PreparationResult, full: bool) -> None:
    completed = pb.DatasetPreparationCompleted.FromString(result.payload)
    message.problem_count = result.problem_count
    if completed.HasField("split_manifest"):
        message.split_manifest.CopyFrom(completed.split_manifest)
    message.split_sha256 = completed.split_sha256
    if completed.HasField("split"):
        message.split.CopyFrom(completed.split)
    if completed.HasField("profile"):
        message.profile.CopyFrom(completed.profile)
    if full:
        message.problems.extend(completed.problems)
        message.near_duplicate_groups.extend(completed.near_duplicate_groups)


def run_input(version: DatasetVersion) -> RunInput:
    """What a run on the (READY) version records and its jobs carry: snapshot and split identity, the split
    manifest, the file manifest and blob prefix, the annotation files; its classes from the profile."""
    completed = pb.DatasetPreparationCompleted()
    if version.result is not None:
        completed.ParseFromString(version.result.payload)
    snapshot, manifest = version.snapshot, completed.split_manifest
    source = {
        "snapshot_sha256": snapshot.sha256,
        "split_sha256": completed.split_sha256,
        "split_manifest": {"uri": manifest.uri, "size_bytes": manifest.size_bytes, "sha256": manifest.sha256},
        "file_manifest": {
            "uri": snapshot.manifest_key, "size_bytes": snapshot.manifest_size,
            "sha256": snapshot.manifest_sha256,
        },
        "blob_prefix": DATASET_BLOBS_PREFIX,
        "annotation_files": dict(snapshot.annotation_files),
    }  # fmt: skip
    classes = tuple(c.class_name for c in completed.profile.classes)
    profile = completed.profile
    largest = int(max(profile.image_widths.max, profile.image_heights.max))
    train = next((count.images for count in profile.splits if count.split == "train"), 0)
    return RunInput(version.name, classes, source, largest_image_side=largest, train_images=train)


def result_from_proto(completed: pb.DatasetPreparationCompleted) -> PreparationResult:
    count = max(completed.problem_count, len(completed.problems))
    return PreparationResult(problem_count=count, payload=completed.SerializeToString(deterministic=True))


def preparation_job(version: DatasetVersion, attempt: int) -> pb.DatasetPreparationJob:
    files = version.snapshot.annotation_files
    own = [pb.DatasetSplitFile(split=s, annotations_file=f) for s, f in sorted(files.items()) if s != "all"]
    return pb.DatasetPreparationJob(
        dataset_version=version.name, attempt=attempt,
        file_manifest=types_pb2.Artifact(
            kind=types_pb2.DATASET_SNAPSHOT, uri=version.snapshot.manifest_key,
            size_bytes=version.snapshot.manifest_size, sha256=version.snapshot.manifest_sha256,
        ),
        blob_prefix=DATASET_BLOBS_PREFIX, snapshot_sha256=version.snapshot.sha256,
        annotations_file=files.get("all", ""), own_split=own,
        split_options=split_options_to_proto(version.split_options),
        reference_input_size=REFERENCE_INPUT_SIZE, owner=version.owner,
        create_time=timestamp(version.create_time),
        output_prefix=f"dataset_versions/{version.id}",
    )  # fmt: skip


def state_changed_event(event: VersionStateChanged, attempt: int) -> pb.DatasetVersionEvent:
    return pb.DatasetVersionEvent(
        dataset_version=f"datasets/{event.dataset_id}/versions/{event.number}", attempt=attempt,
        time=timestamp(event.time),
        state_changed=pb.DatasetVersionStateChanged(
            from_state=cast(pb.DatasetVersionState, event.from_state),
            to_state=cast(pb.DatasetVersionState, event.to_state), reason=event.reason,
        ),
    )  # fmt: skip


def outbox_message(
    event: DatasetEvent, version: DatasetVersion, names: StreamNames
) -> tuple[str, str, str, bytes]:
    """(kind, subject, Nats-Msg-Id, payload) of a version's domain event."""
    if isinstance(event, PreparationRequested):
        payload = preparation_job(version, event.attempt).SerializeToString()
        return "job", names.dataset_jobs_subject, f"{version.name}:{event.attempt}", payload
    subject = names.dataset_version_events_subject(version.dataset_id, version.number)
    payload = state_changed_event(event, version.attempt).SerializeToString()
    return "event", subject, f"{version.id}:state:{int(event.to_state)}", payload


def invalid_reason(version: DatasetVersion, limit: int = 5) -> str:
    """Why runs can't train on the INVALID ``version``: its failure, or its first problems (file, field,
    description) and how many more, for the failure of a run that waited for it."""
    if version.failure is not None:
        why = version.failure.message
    else:
        completed = pb.DatasetPreparationCompleted()
        if version.result is not None:
            completed.ParseFromString(version.result.payload)
        count = version.result.problem_count if version.result else 0
        shown = []
        for problem in completed.problems[:limit]:
            where = ", ".join(p for p in (problem.file, problem.field) if p)
            shown.append(f"{where}: {problem.description}" if where else problem.description)
        more = f"; and {count - len(shown)} more" if count > len(shown) else ""
        why = f"{count} problem(s): " + "; ".join(shown) + more if shown else f"{count} problem(s) found"
    return (
        f"dataset version {version.name} is INVALID: {why}. Fix the dataset and create the run again "
        f"(GetDatasetVersion {version.name} lists every problem)"
    )
