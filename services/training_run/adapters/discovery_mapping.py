"""Model templates and workers ↔ protobuf."""

from __future__ import annotations

import dataclasses

from common.hyperparameters import EARLY_STOPPING_LIMITS, RUN_DEFAULTS, RUN_LIMITS, Limit, limits_for
from common.mmdet_templates import ModelTemplate
from common.proto.raven.v1 import training_run_pb2, types_pb2
from common.tiling import TILING_LIMITS
from services.training_run.adapters.proto_mapping import run_name, timestamp
from services.training_run.domain.workers import QueueDepth, SeenWorker, WorkerInfo

TEMPLATE_PREFIX = "modelTemplates/"
WORKER_PREFIX = "workers/"


def limit_to_proto(limit: Limit) -> training_run_pb2.HyperparameterRange:
    return training_run_pb2.HyperparameterRange(
        field=limit.field, min=limit.low, max=limit.high, min_exclusive=limit.low_exclusive,
        max_exclusive=limit.high_exclusive, integer=limit.integer, multiple_of=limit.multiple_of,
        note=limit.note,
    )  # fmt: skip


def template_to_proto(template: ModelTemplate, pretrained: bool) -> training_run_pb2.ModelTemplate:
    """Defaults and ranges are the values Create fills in and checks for a run from the template (no base
    model): ``pretrained`` says whether the server starts such runs from pretrained backbone weights."""
    chosen = template.defaults_for(pretrained).as_dict()
    defaults = {k: v for k, v in chosen.items() if v is not None}
    options = template.options
    return training_run_pb2.ModelTemplate(
        name=TEMPLATE_PREFIX + template.name,
        template_id=template.name,
        description=template.description,
        architecture=template.architecture,
        default_hyperparameters=types_pb2.Hyperparameters(**defaults, **RUN_DEFAULTS),  # type: ignore[arg-type]
        ranges=[
            limit_to_proto(limit) for limit in (*limits_for(template, pretrained=pretrained), *RUN_LIMITS)
        ]
        + [  # the fields of the ``early_stopping`` message, by their path
            limit_to_proto(dataclasses.replace(limit, field=f"early_stopping.{limit.field}"))
            for limit in EARLY_STOPPING_LIMITS
        ]
        + [  # and of the ``tiling`` message
            limit_to_proto(dataclasses.replace(limit, field=f"tiling.{limit.field}"))
            for limit in TILING_LIMITS
        ],
        gpu_recommended=template.gpu_recommended,
        options=training_run_pb2.TemplateOptions(
            mixed_precision=options.mixed_precision, tiling=options.tiling, multi_gpu=options.multi_gpu
        ),
        mmdet_config=template.mmdet_config,
    )


def worker_info_from_proto(info: training_run_pb2.WorkerInfo) -> WorkerInfo:
    return WorkerInfo(info.device_kind, info.gpu_model, info.gpu_count, info.slots, info.gpus_per_run)


def worker_to_proto(worker: SeenWorker) -> training_run_pb2.Worker:
    info = worker.info
    return training_run_pb2.Worker(
        name=WORKER_PREFIX + worker.worker_id,
        worker_id=worker.worker_id,
        info=training_run_pb2.WorkerInfo(
            device_kind=info.device_kind,
            gpu_model=info.gpu_model,
            gpu_count=info.gpu_count,
            slots=info.slots,
            gpus_per_run=info.gpus_per_run,
        ),
        training_runs=[run_name(run_id) for run_id in worker.training_runs],
        free_slots=worker.free_slots,
        first_seen_time=timestamp(worker.first_seen_time),
        last_seen_time=timestamp(worker.last_seen_time),
    )


def queue_to_proto(depth: QueueDepth) -> training_run_pb2.QueueDepth:
    return training_run_pb2.QueueDepth(
        capability=depth.capability,
        pending_training_runs=depth.pending_training_runs,
        workers=depth.workers,
        free_slots=depth.free_slots,
    )
