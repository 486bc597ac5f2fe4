"""Translations between the dataset preparation's plain results and ``raven.v1.datasets`` messages."""

from __future__ import annotations

from common.artifacts import StoredArtifact
from common.dataset_layout import UNSPLIT
from common.proto.raven.v1 import datasets_pb2, types_pb2
from services.trainer_worker.adapters.version_preparation import PreparedVersion, VersionSpec
from services.trainer_worker.domain import profile as profiles
from services.trainer_worker.domain.split import SplitFractions
from services.trainer_worker.domain.version import VersionSplit

MAX_LISTED = 1000  # problems and near-duplicate groups carried in a result
DEFAULT_TRAIN, DEFAULT_VAL = 0.7, 0.2


def version_spec(job: datasets_pb2.DatasetPreparationJob) -> VersionSpec:
    """The preparation's input; ValueError when the job cannot describe a version."""
    if not job.dataset_version or not job.file_manifest.uri or not job.blob_prefix or not job.output_prefix:
        raise ValueError(
            "dataset preparation job lacks dataset_version, file_manifest, blob_prefix or output_prefix"
        )
    options = job.split_options
    train = options.train_fraction if options.HasField("train_fraction") else DEFAULT_TRAIN
    val = options.val_fraction if options.HasField("val_fraction") else DEFAULT_VAL
    fractions = SplitFractions(train, val, max(0.0, round(1.0 - train - val, 9)))  # ValueError when off
    if job.own_split:
        files = {s.split: s.annotations_file for s in job.own_split}
    else:
        files = {UNSPLIT: job.annotations_file or "annotations.json"}
    return VersionSpec(
        file_manifest_key=job.file_manifest.uri,
        file_manifest_sha256=job.file_manifest.sha256,
        blob_prefix=job.blob_prefix,
        snapshot_sha256=job.snapshot_sha256,
        annotation_files=files,
        fractions=fractions,
        option_seed=options.seed if options.HasField("seed") else 0,
        reference_input_size=job.reference_input_size or 640,
        output_prefix=job.output_prefix,
    )


def completed(prepared: PreparedVersion, spec: VersionSpec) -> datasets_pb2.DatasetPreparationCompleted:
    out = datasets_pb2.DatasetPreparationCompleted(problem_count=prepared.problem_count)
    for file, description in prepared.problems[:MAX_LISTED]:
        out.problems.add(file=file, description=description)
    version, profile = prepared.split, prepared.profile
    if prepared.problems or version is None or profile is None or prepared.split_manifest is None:
        return out
    out.split_manifest.CopyFrom(_artifact(prepared.split_manifest))
    out.split_sha256 = version.split_sha256
    out.split.CopyFrom(_split_summary(version, spec))
    out.profile.CopyFrom(_profile(profile, version, len(prepared.exif_rotated)))
    for report in version.duplicates[:MAX_LISTED]:
        out.near_duplicate_groups.add(
            files=report.duplicates.file_names,
            splits=report.splits,
            max_distance=report.duplicates.max_distance,
            exact=report.duplicates.kind == "exact",
            resolved_split=report.resolved_split,
        )
    return out


def _artifact(stored: StoredArtifact) -> types_pb2.Artifact:
    return types_pb2.Artifact(
        kind=types_pb2.ArtifactKind.Value("SPLIT_MANIFEST"),
        uri=stored.key,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
    )


def _split_summary(version: VersionSplit, spec: VersionSpec) -> datasets_pb2.SplitSummary:
    summary = datasets_pb2.SplitSummary(
        origin=datasets_pb2.SPLIT_ORIGIN_DATASET if version.given else datasets_pb2.SPLIT_ORIGIN_COMPUTED,
        group_key=version.grouping,
        leaks_found=version.leaked_images,
        leaks_moved=version.moved_images,
    )
    if not version.given:
        summary.options.CopyFrom(
            datasets_pb2.SplitOptions(
                train_fraction=spec.fractions.train, val_fraction=spec.fractions.val, seed=spec.option_seed
            )
        )
    for split, ds in version.splits.items():
        if ds.images or split != "test":
            summary.splits.add(
                split=split,
                images=len(ds.images),
                annotations=len(ds.annotations),
                groups=version.groups[split],
            )
    return summary


def _profile(p: profiles.DatasetProfile, version: VersionSplit, rotated: int) -> datasets_pb2.DatasetProfile:
    near = {f for r in version.duplicates for f in r.duplicates.file_names}
    out = datasets_pb2.DatasetProfile(
        images=p.images,
        annotations=p.annotations,
        image_widths=_distribution(p.image_widths),
        image_heights=_distribution(p.image_heights),
        boxes_per_image=_distribution(p.boxes_per_image),
        empty_images=p.empty_images,
        near_duplicates_found=len(near),
        leaks_found=version.leaked_images,
        exif_rotated_images=rotated,
        recommendation=p.recommendation,
        reference_input_size=p.reference_input_size,
        recommended_tile_size=p.recommended_tile_size,
    )
    groups = version.groups
    out.splits.extend(_count(c, groups.get(c.split, 0)) for c in p.splits)
    for c in p.classes:
        out.classes.add(
            class_name=c.name,
            category_id=c.category_id,
            images=c.images,
            annotations=c.annotations,
            splits=[_count(s, 0) for s in c.splits],
        )
    out.image_sizes.extend(
        datasets_pb2.ImageSizeCount(width=w, height=h, images=n) for w, h, n in p.image_sizes
    )
    out.box_sizes.extend(map(_bin, p.box_sizes))
    out.coco_box_sizes.extend(map(_bin, p.coco_box_sizes))
    out.boxes_per_image_histogram.extend(map(_bin, p.boxes_per_image_histogram))
    return out


def _count(c: profiles.SplitCount, groups: int) -> datasets_pb2.SplitCount:
    return datasets_pb2.SplitCount(split=c.split, images=c.images, annotations=c.annotations, groups=groups)


def _bin(b: profiles.Bin) -> datasets_pb2.HistogramBin:
    return datasets_pb2.HistogramBin(label=b.label, lower=b.lower, upper=b.upper, count=b.count)


def _distribution(d: profiles.Distribution) -> datasets_pb2.DistributionSummary:
    return datasets_pb2.DistributionSummary(min=d.min, max=d.max, mean=d.mean, median=d.median)
