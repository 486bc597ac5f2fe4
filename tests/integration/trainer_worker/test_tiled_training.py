"""Sliced evaluation and a real tiled run (RTMDet-tiny, CPU).

- Sliced evaluation of an untiled model with one tile covering each whole image equals the plain evaluation
  exactly (metrics and predictions): the tiling and the merge add no error.
- A real run with ``tiling`` through the worker: trained on tiles of the train split, evaluated by sliced
  inference on the full test images, the metrics and the stored config saying so.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from common.artifacts import ArtifactStore
from common.mmdet_config import HyperParams, build_config
from common.mmdet_fill import fill_dataset
from common.proto.raven.v1 import events_pb2, types_pb2
from common.tiling import Tiling
from services.trainer_worker.adapters.dataset_source import prepare_dataset
from services.trainer_worker.adapters.tile_cache import TILE_CACHE_DIR
from services.trainer_worker.adapters.training import TrainingProcess, TrainingSpec
from services.trainer_worker.domain.job import Settlement
from services.trainer_worker.domain.outcome import TrainingResult
from services.trainer_worker.service_layer.steps import JobSteps
from tests.fixtures.tiny_objects import make_tiny_object_dataset
from tests.integration.trainer_worker.test_worker_harness import eventually, start_worker
from tests.integration.trainer_worker.test_worker_training import absolute_strings, env

__all__ = ["env"]  # the fixture, imported for the test here
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
SIDE = 192


def predictions(eval_dir: Path) -> list[dict[str, object]]:
    return json.loads((eval_dir / "test_predictions.bbox.json").read_text())


async def test_one_tile_per_image_equals_the_plain_evaluation_exactly(tmp_path: Path) -> None:
    from mmengine.config import Config

    from common.checkpoint_safety import install_safe_globals
    from services.trainer_worker.adapters.evaluation import evaluate_checkpoint

    install_safe_globals()  # checkpoints load with torch.load(weights_only=True), as in the training child

    make_tiny_object_dataset(tmp_path / "datasets" / "tiny", n_images=8, size=SIDE, objects=(3, 6), seed=2,
                             split=(2, 2))  # fmt: skip
    prepared = prepare_dataset(f"file://{tmp_path / 'datasets'}", "tiny", tmp_path / "prepared", seed=0)
    hp = HyperParams(epochs=1, batch_size=2, image_size=96, val_interval=1, seed=1)
    work = tmp_path / "train"
    cfg = fill_dataset(build_config("rtmdet_tiny", [], hp).data, prepared, work, device="cpu", load_from=None,
                       resume_from=None)  # fmt: skip
    process = TrainingProcess(TrainingSpec(cfg.to_dict(), work, "cpu", has_test=True, evaluate=False))
    process.start()
    outcome = await process.wait()
    assert isinstance(outcome, TrainingResult), outcome
    checkpoint = Path(outcome.best_checkpoint)

    plain_cfg = Config(copy.deepcopy(cfg.to_dict()))
    plain_cfg.test_dataloader.batch_size = 1  # the sliced evaluation predicts one image at a time
    plain, plain_params = evaluate_checkpoint(plain_cfg, checkpoint, "test", tmp_path / "plain")

    whole = Tiling(SIDE, 0, 0.5)  # one tile: the whole image
    sliced_cfg = Config(copy.deepcopy(cfg.to_dict()))
    sliced_cfg.raven.hyperparams.update(whole.flat())
    sliced, sliced_params = evaluate_checkpoint(sliced_cfg, checkpoint, "test", tmp_path / "sliced")

    assert predictions(tmp_path / "plain" / "eval_test"), "the model predicted nothing: nothing compared"
    assert predictions(tmp_path / "sliced" / "eval_test") == predictions(tmp_path / "plain" / "eval_test")
    assert sliced == plain and sliced_params == plain_params
    assert "coco/bbox_mAP" in plain

    # Smaller tiles: predictions come back in full-image pixels (beyond the first tile) and differ.
    small_cfg = Config(copy.deepcopy(cfg.to_dict()))
    small_cfg.raven.hyperparams.update(Tiling(96, 32, 0.5).flat())
    evaluate_checkpoint(small_cfg, checkpoint, "test", tmp_path / "small")
    merged = predictions(tmp_path / "small" / "eval_test")
    assert merged and max(p["bbox"][0] + p["bbox"][2] for p in merged) > 96  # type: ignore[index,operator]
    assert merged != predictions(tmp_path / "plain" / "eval_test")


async def test_a_tiled_run_trains_on_tiles_and_evaluates_sliced(env: dict[str, object]) -> None:
    settings = env["settings"]
    root = Path(settings.dataset_root.removeprefix("file://"))  # type: ignore[attr-defined]
    make_tiny_object_dataset(root / "tiny", n_images=8, size=256, objects=(4, 8), seed=5, split=(2, 2))
    steps = JobSteps(artifacts=ArtifactStore(settings.artifact_root), dataset_root=settings.dataset_root,  # type: ignore[attr-defined]
                     progress_every_iters=1, progress_every_seconds=0.0,
                     tile_cache=Path(settings.work_dir) / TILE_CACHE_DIR)  # type: ignore[attr-defined]  # fmt: skip
    h = await start_worker(settings, env["names"], env["servicer"], steps)  # type: ignore[arg-type]
    env["harnesses"].append(h)  # type: ignore[attr-defined]
    tiling = types_pb2.Tiling(tile_size=128, overlap=32, min_box_visibility=0.5)
    hp = HyperParams(epochs=1, batch_size=4, image_size=128, val_interval=1, tiling_tile_size=128,
                     tiling_overlap=32, tiling_min_box_visibility=0.5)  # fmt: skip
    resolved = build_config("rtmdet_tiny", [], hp)
    job = events_pb2.TrainingJob(
        run_id="run-tiled", attempt=1, dataset="tiny", model_template="rtmdet_tiny", owner="alice",
        config_sha256=resolved.sha256, hyperparameters=types_pb2.Hyperparameters(seed=0, tiling=tiling),
    )  # fmt: skip
    job.config.update(resolved.data)
    await h.publish(job)
    await eventually(lambda: h.app.worker.settlements, within=500, what="the tiled job settled")

    events = await h.events("run-tiled")
    assert events[-1].WhichOneof("payload") == "completed", events[-1]
    assert h.app.worker.settlements == [Settlement.ACK]
    completed = events[-1].completed
    store = ArtifactStore(h.settings.artifact_root)
    by_kind = {a.kind: a for a in completed.artifacts}
    metrics = json.loads(store.read_bytes(by_kind[types_pb2.METRICS].uri))
    stored = json.loads(store.read_bytes(by_kind[types_pb2.CONFIG].uri))
    inference = metrics["inference"]  # how it was scored, as an evaluation records it (EvaluationInference)
    assert {k: inference[k] for k in ("sliced", "tile_size", "overlap", "merge")} == {
        "sliced": True, "tile_size": 128, "overlap": 32, "merge": "class-wise NMS"}  # fmt: skip
    assert inference["merge_iou_threshold"] == stored["model"]["test_cfg"]["nms"]["iou_threshold"]
    assert stored["raven"]["sliced_inference"] == {"sliced": True, "tile_size": 128, "overlap": 32}
    assert stored["train_dataloader"]["dataset"]["ann_file"] == "data/train_tiles.json"
    assert absolute_strings(stored) == [], absolute_strings(stored)  # the tile cache's path is not in it
    manifest = json.loads(store.read_bytes(by_kind[types_pb2.SPLIT_MANIFEST].uri))
    assert len(manifest["test"]) == 2
    # Scored on the full 256 px test images: predictions in full-image pixels, beyond one tile's extent.
    predicted = json.loads(store.read_bytes(by_kind[types_pb2.PREDICTIONS].uri))
    assert {p["image_id"] for p in predicted} <= set(manifest["test"])
    assert max(p["bbox"][0] + p["bbox"][2] for p in predicted) > 128
    assert completed.evaluation.HasField("test")
    cache = Path(h.settings.work_dir) / TILE_CACHE_DIR
    assert len(list(cache.iterdir())) == 1  # the tiles stay for the next run on the same data
