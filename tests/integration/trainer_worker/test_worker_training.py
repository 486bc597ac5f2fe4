"""A real MMDetection training (RTMDet-tiny, CPU, a few iterations) through the worker: progress, artifacts,
metrics; and a real mid-training stop (SIGTERM path) that releases the lease and resumes on the next one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import json_format
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from common.artifacts import ArtifactStore
from common.config_data import config_sha256
from common.mmdet_config import HyperParams, build_config
from common.nats_streams import StreamNames
from common.proto.raven.v1 import events_pb2, types_pb2
from common.settings import Settings
from services.trainer_worker.adapters.dataset_source import prepare_dataset
from services.trainer_worker.domain.job import Settlement
from services.trainer_worker.service_layer.steps import JobSteps
from tests.fixtures.synthetic_coco import make_dataset
from tests.helpers import worker_token
from tests.integration.trainer_worker.test_worker_harness import (
    Harness,
    eventually,
    start_lease_server,
    start_worker,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
TEMPLATE = "rtmdet_tiny"


@pytest.fixture
async def env(tmp_path: Path, nats_url: str, unique: str) -> AsyncIterator[dict[str, object]]:
    server, servicer = await start_lease_server()
    datasets = tmp_path / "datasets"
    make_dataset(datasets / "waste", n_images=16, size=128, with_split=True)
    settings = Settings(
        data_dir=tmp_path / "data", nats_url=nats_url, worker_token=worker_token(),
        training_run_addr=f"127.0.0.1:{server.port}", dataset_root=f"file://{datasets}",
        jobs_stream=f"JOBS_{unique}", events_stream=f"EVENTS_{unique}", subject_prefix=f"t{unique}",
        worker_id=f"worker-{unique}", worker_slots=1, device="cpu", progress_every_iters=1,
        progress_every_seconds=0.0, cancel_grace_seconds=60.0,
    )  # fmt: skip
    harnesses: list[Harness] = []
    yield {"settings": settings, "names": StreamNames.from_settings(settings), "servicer": servicer,
           "harnesses": harnesses}  # fmt: skip
    for h in harnesses:
        if not h.task.done():
            await h.app.worker.shutdown()
        await asyncio.wait_for(h.task, 120)
    if harnesses:
        for stream in (settings.jobs_stream, settings.events_stream):
            await harnesses[0].js.delete_stream(stream)
    for h in harnesses:
        await h.app.close()
    await server.stop(0)


async def real_worker(env: dict[str, object]) -> Harness:
    settings = env["settings"]
    assert isinstance(settings, Settings)
    steps = JobSteps(
        artifacts=ArtifactStore(settings.artifact_root), dataset_root=settings.dataset_root,
        cancel_grace_seconds=settings.cancel_grace_seconds, progress_every_iters=1,
        progress_every_seconds=0.0,
    )  # fmt: skip
    h = await start_worker(settings, env["names"], env["servicer"], steps)  # type: ignore[arg-type]
    env["harnesses"].append(h)  # type: ignore[attr-defined]
    return h


async def publish_training_job(h: Harness, run_id: str, epochs: int) -> None:
    resolved = build_config(
        TEMPLATE, [], HyperParams(epochs=epochs, batch_size=2, image_size=64, val_interval=1)
    )
    job = events_pb2.TrainingJob(run_id=run_id, attempt=1, dataset="waste", model_template=TEMPLATE,
                                 owner="alice", config_sha256=resolved.sha256)  # fmt: skip
    job.config.update(resolved.data)
    await h.publish(job)


async def test_real_training_through_the_worker(env: dict[str, object]) -> None:
    h = await real_worker(env)
    await publish_training_job(h, "run-real", epochs=1)
    await eventually(lambda: h.app.worker.settlements, within=600, what="the training job settled")

    events = await h.events("run-real")
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[-1] == "completed", events[-1]
    assert h.app.worker.settlements == [Settlement.ACK]
    progress = [e.progress.progress for e in events if e.HasField("progress")]
    assert progress and progress[-1].max_iters > 0 and any(p.losses for p in progress)
    phases = [e.phase_changed.phase for e in events if e.HasField("phase_changed")]
    assert phases == [
        types_pb2.PREPARING_DATASET,
        types_pb2.TRAINING,
        types_pb2.EVALUATING,
        types_pb2.UPLOADING,
    ]
    assert "log" in kinds

    completed = events[-1].completed
    store = ArtifactStore(h.settings.artifact_root)
    by_kind = {a.kind: a for a in completed.artifacts}
    for kind in (types_pb2.CHECKPOINT, types_pb2.CONFIG, types_pb2.METRICS, types_pb2.LOG, types_pb2.CURVES,
                 types_pb2.SPLIT_MANIFEST):  # fmt: skip
        assert kind in by_kind, types_pb2.ArtifactKind.Name(kind)
        assert store.sha256(by_kind[kind].uri) == by_kind[kind].sha256
    metrics = json.loads(store.read_bytes(by_kind[types_pb2.METRICS].uri))
    for key in ("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m", "bbox_mAP_l"):
        assert key in metrics["val"] and key in metrics["test"]
    assert set(metrics["val"]["per_class_ap"]) == {"bottle", "tire", "bag"}
    assert completed.evaluation.HasField("val") and completed.evaluation.HasField("test")
    assert completed.versions.torch and completed.versions.mmdet and completed.parameter_count > 0
    assert config_sha256(json_format.MessageToDict(completed.config)) == completed.config_sha256
    assert list(completed.class_names) == ["bottle", "tire", "bag"] and completed.epochs == 1
    assert store.list("runs/run-real/checkpoints") == []
    # The config as trained is stored as JSON data without server paths (relative to the attempt's work dir).
    config_artifact = by_kind[types_pb2.CONFIG]
    stored = json.loads(store.read_bytes(config_artifact.uri))
    assert config_artifact.uri.endswith("/config.json") and json.loads(completed.config_text) == stored
    assert absolute_strings(stored) == [], absolute_strings(stored)
    assert stored["work_dir"] == "train" and stored["train_dataloader"]["dataset"]["data_root"] == "images"
    check_test_split_analysis(completed, store, h.settings.dataset_root, Path(h.settings.data_dir) / "again")


def check_test_split_analysis(
    completed: events_pb2.RunCompleted, store: ArtifactStore, dataset_root: str, scratch: Path
) -> None:
    """The test split's analysis is stored (sha256-checked) and its recorded bbox mAP equals an independent
    COCOeval over the stored predictions JSON and the split's annotation file, to 1e-6. (A one-epoch model
    scores about 0 here; test_split_analysis.py checks non-zero numbers on the same analysis code.)"""
    by_kind = {a.kind: a for a in completed.artifacts}
    for kind in (types_pb2.PREDICTIONS, types_pb2.EVALUATION_ANALYSIS, types_pb2.CONFUSION_MATRIX,
                 types_pb2.PR_CURVES):  # fmt: skip
        assert kind in by_kind, types_pb2.ArtifactKind.Name(kind)
        assert store.sha256(by_kind[kind].uri) == by_kind[kind].sha256
    for kind in (types_pb2.CONFUSION_MATRIX, types_pb2.PR_CURVES):
        assert store.read_bytes(by_kind[kind].uri).startswith(b"\x89PNG")
    predictions = json.loads(store.read_bytes(by_kind[types_pb2.PREDICTIONS].uri))
    assert predictions, "the best checkpoint predicted nothing on test: nothing to compare"
    # The split's annotation file, as the worker prepares it (same dataset, same split).
    prepared = prepare_dataset(dataset_root, "waste", scratch, seed=0)
    assert prepared.test_ann is not None
    manifest = json.loads(store.read_bytes(by_kind[types_pb2.SPLIT_MANIFEST].uri))
    ground_truth = json.loads(prepared.test_ann.read_text())
    assert sorted(i["id"] for i in ground_truth["images"]) == sorted(manifest["test"])
    coco_gt = COCO()
    coco_gt.dataset = {"info": {}, "licenses": [], **ground_truth}
    coco_gt.createIndex()
    evaluator = COCOeval(coco_gt, coco_gt.loadRes(predictions), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    independent = float(evaluator.stats[0])
    assert abs(completed.evaluation.test.bbox_map - independent) <= 1e-6, (
        completed.evaluation.test.bbox_map, independent)  # fmt: skip
    metrics = json.loads(store.read_bytes(by_kind[types_pb2.METRICS].uri))
    assert abs(metrics["test"]["bbox_mAP"] - independent) <= 1e-6
    analysis = json.loads(store.read_bytes(by_kind[types_pb2.EVALUATION_ANALYSIS].uri))
    recommended = {c["name"]: c["recommended_score_threshold"] for c in analysis["classes"]}
    carried = {c.class_name: c for c in completed.evaluation.test.per_class_ap}
    assert set(carried) == set(recommended) == {"bottle", "tire", "bag"}
    for name, item in carried.items():
        assert item.HasField("recommended_score_threshold")
        assert item.recommended_score_threshold == pytest.approx(recommended[name], abs=1e-12)
    assert not any(c.HasField("recommended_score_threshold") for c in completed.evaluation.val.per_class_ap)


def absolute_strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in absolute_strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in absolute_strings(v)]
    return [node] if isinstance(node, str) and node.startswith("/") else []


async def test_real_training_stopped_by_shutdown_resumes_on_the_next_worker(env: dict[str, object]) -> None:
    h = await real_worker(env)
    await publish_training_job(h, "run-resume", epochs=3)
    run = h.servicer.runs["run-resume"]

    async def epoch_done() -> bool:
        return any(e.HasField("progress") and e.progress.progress.epoch >= 1 and e.progress.progress.iter > 0
                   for e in await h.events("run-resume"))  # fmt: skip

    await eventually(epoch_done, within=600, what="training progress")
    await h.app.worker.shutdown()
    await asyncio.wait_for(h.task, 300)
    assert h.app.worker.settlements == [Settlement.NAK]
    assert run.releases and run.releases[0][1].startswith("runs/run-resume/checkpoints/attempt-1/")
    released = run.releases[0][1]
    assert ArtifactStore(h.settings.artifact_root).exists(released)

    successor = await real_worker(env)
    await eventually(lambda: len(successor.app.worker.settlements) == 2, within=600,
                     what="the resumed job and the stale attempt-1 job settled")  # fmt: skip
    events = await h.events("run-resume")
    started = [e for e in events if e.HasField("started")]
    assert started[-1].attempt == 2 and started[-1].started.resumed_from == released
    assert events[-1].WhichOneof("payload") == "completed"
    assert sorted(successor.app.worker.settlements) == [Settlement.ACK, Settlement.TERM]  # new + stale
