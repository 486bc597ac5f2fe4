"""Discovery over real gRPC: templates (the catalogue Create validates against), workers seen through real
claims and heartbeats, the queue per capability, and the "dataset does not exist" hint."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from common.auth import USER_PERMISSIONS, Permission
from common.mmdet_templates import TEMPLATES
from common.proto.raven.v1 import training_run_pb2 as pb
from common.proto.raven.v1 import types_pb2
from tests.helpers import bearer, token
from tests.integration.training_run.conftest import Harness
from tests.integration.training_run.test_create_and_read import violations

GPU_INFO = pb.WorkerInfo(device_kind="cuda", gpu_model="NVIDIA H100 80GB HBM3", gpu_count=2, slots=2)
CPU_INFO = pb.WorkerInfo(device_kind="cpu", slots=1)
OPERATOR = bearer(token("olivia", [Permission.VIEW_TRAINING_RUNS, Permission.VIEW_ALL_TRAINING_RUNS]))
ADMIN = bearer(token("root", [Permission.SUPERADMIN]))
BOB_PERMISSIONS = USER_PERMISSIONS - {Permission.VIEW_ALL_TRAINING_RUNS}
BOB = bearer(token("bob", BOB_PERMISSIONS))


async def _all_templates(harness: Harness) -> list[pb.ModelTemplate]:
    found, page_token = [], ""
    while True:
        page = await harness.stub.ListModelTemplates(
            pb.ListModelTemplatesRequest(page_size=1, page_token=page_token), metadata=harness.user
        )
        found.extend(page.model_templates)
        page_token = page.next_page_token
        if not page_token:
            return found


def _message(hp: types_pb2.Hyperparameters, parents: list[str]) -> Any:
    for name in parents:
        hp = getattr(hp, name)
    return hp


def _get(hp: types_pb2.Hyperparameters, field: str) -> Any:
    *parents, leaf = field.split(".")
    return getattr(_message(hp, parents), leaf)


def _within(value: float, r: pb.HyperparameterRange) -> bool:
    low_ok = value > r.min if r.min_exclusive else value >= r.min
    high_ok = value < r.max if r.max_exclusive else value <= r.max
    return low_ok and high_ok and (not r.multiple_of or int(value) % r.multiple_of == 0)


async def test_a_client_creates_a_run_from_what_the_listing_told_it(harness: Harness) -> None:
    templates = await _all_templates(harness)
    assert [t.template_id for t in templates] == sorted(TEMPLATES)
    # Pick a template that trains on CPU, take its defaults, change what the ranges say may be changed.
    chosen = next(t for t in templates if not t.gpu_recommended)
    got = await harness.stub.GetModelTemplate(
        pb.GetModelTemplateRequest(name=chosen.name), metadata=harness.user
    )
    assert got == chosen and got.mmdet_config.endswith(".py") and got.architecture
    assert got.options.mixed_precision and not (got.options.tiling or got.options.multi_gpu)
    ranges = {r.field: r for r in got.ranges}
    scalars = {  # numbers have ranges; precision (an enum) and auto_scale_lr (a bool) have their values
        f.name for f in types_pb2.Hyperparameters.DESCRIPTOR.fields
        if f.message_type is None and f.name not in ("precision", "auto_scale_lr")
    }  # fmt: skip
    nested = {f"early_stopping.{f.name}" for f in types_pb2.EarlyStopping.DESCRIPTOR.fields}
    nested |= {f"tiling.{f.name}" for f in types_pb2.Tiling.DESCRIPTOR.fields}
    assert set(ranges) == scalars | nested
    hp = types_pb2.Hyperparameters()
    hp.CopyFrom(got.default_hyperparameters)
    assert all(_within(_get(hp, f), r) for f, r in ranges.items() if _get(hp, f))
    hp.epochs = int(ranges["epochs"].min)
    hp.val_interval = 1
    hp.image_size = int(ranges["image_size"].min) + ranges["image_size"].multiple_of
    run = await harness.create(model_template=got.template_id, hyperparameters=hp)
    assert run.state == types_pb2.PENDING and run.model_template == got.template_id
    assert run.hyperparameters.image_size == hp.image_size

    # One step past each advertised bound is refused by Create, naming the field.
    for field, r in ranges.items():
        if field in ("seed", "val_interval") or not r.integer or int(r.max) + 1 == 0:
            continue  # 0 would mean "the default", not a value past the bound
        bad = types_pb2.Hyperparameters()
        *parents, leaf = field.split(".")
        setattr(_message(bad, parents), leaf, int(r.max) + 1)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await harness.create(model_template=got.template_id, hyperparameters=bad)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"training_run.hyperparameters.{field}" in violations(refused.value), field


async def test_template_errors_are_actionable(harness: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await harness.stub.GetModelTemplate(
            pb.GetModelTemplateRequest(name="modelTemplates/yolo"), metadata=harness.user
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND and "rtmdet_tiny" in missing.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await harness.stub.GetModelTemplate(
            pb.GetModelTemplateRequest(name="rtmdet_tiny"), metadata=harness.user
        )
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as forged:
        await harness.stub.ListModelTemplates(
            pb.ListModelTemplatesRequest(page_token="!!"), metadata=harness.user
        )
    assert forged.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_workers_seen_through_claims_and_heartbeats_with_the_queue(harness: Harness) -> None:
    gpu_run = await harness.create(model_template="faster_rcnn_r50_fpn", display_name="gpu run")
    cpu_run = await harness.create(model_template="rtmdet_tiny", display_name="cpu run")
    await harness.create(model_template="rtmdet_tiny", display_name="still queued")

    claim = pb.ClaimTrainingRunRequest(name=gpu_run.name, worker_id="gpu-box", job_attempt=1, worker=GPU_INFO)
    lease = await harness.stub.ClaimTrainingRun(claim, metadata=harness.worker)
    await harness.stub.HeartbeatTrainingRun(
        pb.HeartbeatTrainingRunRequest(
            name=gpu_run.name, worker_id="gpu-box", attempt=lease.attempt, worker=GPU_INFO
        ),
        metadata=harness.worker,
    )
    await harness.stub.HeartbeatWorker(
        pb.HeartbeatWorkerRequest(worker_id="cpu-box", worker=CPU_INFO), metadata=harness.worker
    )

    listed = await harness.stub.ListWorkers(pb.ListWorkersRequest(), metadata=OPERATOR)
    workers = {w.worker_id: w for w in listed.workers}
    assert set(workers) == {"gpu-box", "cpu-box"}
    gpu = workers["gpu-box"]
    assert gpu.name == "workers/gpu-box" and gpu.info == GPU_INFO
    assert list(gpu.training_runs) == [gpu_run.name] and gpu.free_slots == 1
    assert gpu.last_seen_time.seconds >= gpu.first_seen_time.seconds > 0
    assert workers["cpu-box"].info == CPU_INFO and workers["cpu-box"].free_slots == 1
    queue = {q.capability: q for q in listed.queue}
    assert (queue["gpu"].pending_training_runs, queue["gpu"].workers, queue["gpu"].free_slots) == (0, 1, 1)
    assert (queue["any"].pending_training_runs, queue["any"].workers, queue["any"].free_slots) == (2, 2, 2)
    assert cpu_run.name not in gpu.training_runs

    # A superadmin sees the same; a user without view_all may not list workers (their runs are everyone's).
    assert (await harness.stub.ListWorkers(pb.ListWorkersRequest(), metadata=ADMIN)).workers
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await harness.stub.ListWorkers(pb.ListWorkersRequest(), metadata=BOB)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The window leaves out workers not seen within it; a window past the limit is refused.
    empty = await harness.stub.ListWorkers(
        pb.ListWorkersRequest(seen_within=duration_pb2.Duration(nanos=1000)), metadata=OPERATOR
    )
    assert not empty.workers
    with pytest.raises(grpc.aio.AioRpcError) as too_long:
        await harness.stub.ListWorkers(
            pb.ListWorkersRequest(seen_within=duration_pb2.Duration(seconds=10**9)), metadata=OPERATOR
        )
    assert too_long.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_bad_worker_info_is_invalid_argument(harness: Harness) -> None:
    bad = pb.WorkerInfo(device_kind="tpu", gpu_count=-1, slots=10_000)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.stub.HeartbeatWorker(
            pb.HeartbeatWorkerRequest(worker_id="w", worker=bad), metadata=harness.worker
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_missing_dataset_says_how_to_make_one_available_without_leaking_paths(harness: Harness) -> None:
    root = harness.app.settings.dataset_root
    with pytest.raises(grpc.aio.AioRpcError) as user_error:
        await harness.create(dataset="waste/v9")
    text = violations(user_error.value)["training_run.dataset"]
    assert user_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ask an operator" in text and "annotations.json" in text and "'waste/v9/'" in text
    assert root.removeprefix("file://") not in text + user_error.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as admin_error:
        await harness.create(dataset="waste/v9", metadata=ADMIN)
    assert f"{root}/waste/v9/" in violations(admin_error.value)["training_run.dataset"]
