"""Sliced inference on full images (runs in the training child): tile, predict, shift back, merge, score.

Each full image of a split is decoded as the test pipeline's ``LoadImageFromFile`` decodes it, cut into the
windows of ``domain/tiling.py``, each window goes through the rest of the test pipeline and the model, its
boxes are shifted back to the full image, and the boxes of all windows are merged with class-wise NMS
(``mmcv.ops.batched_nms``, the model's own test-time IoU threshold and per-image cap: the settings of
``common/inference_settings.py``, which the evaluation records as they were used). The merged
predictions are scored by the config's own evaluator (mmdet's ``CocoMetric``) on the full-image ground
truth, exactly as a plain evaluation scores the model's full-image predictions, so tiled and untiled models
of one dataset are compared on the same images by the same code. ``sahi`` was not added: its merge is this
same class-wise NMS, and it would bring its own model wrappers (and shapely, pybboxes, fire) for one function.

One window covering the whole image reproduces the plain evaluation exactly (the merge adds no error):
``tests/integration/trainer_worker/test_tiled_training.py`` holds it so.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from common.inference_settings import Inference, inference_of
from common.mmdet_config import META_KEY
from common.tiling import Tiling
from services.trainer_worker.domain.tiling import tile_windows


def sliced_settings(cfg: Any) -> Tiling | None:
    """The tiling a config's run trained with (its ``raven`` block), None for a model trained on full
    images. Only tile size and overlap matter for inference."""
    return inference_of(cfg).tiling


def evaluate_sliced(
    cfg: Any, checkpoint: Path, split: str, tiling: Tiling, *, outfile_prefix: str | None = None
) -> tuple[dict[str, float], int]:
    """COCO bbox metrics of ``checkpoint`` on ``split``'s full images by sliced inference, in the shape a
    test-only Runner returns (``coco/bbox_mAP``...); (metrics, parameter count). With ``outfile_prefix``
    the merged predictions stay in ``<prefix>.bbox.json`` (COCO results), as a plain evaluation keeps them.
    """
    import json

    import torch
    from mmdet.apis import init_detector
    from mmdet.registry import METRICS
    from mmengine.evaluator import Evaluator

    loader = cfg[f"{split}_dataloader"]
    dataset = loader["dataset"]
    ann_file = Path(cfg[f"{split}_evaluator"].get("ann_file") or dataset["ann_file"])
    image_root = Path(dataset.get("data_root") or "") / ((dataset.get("data_prefix") or {}).get("img") or "")
    classes = tuple(dataset["metainfo"]["classes"])
    model_cfg = copy.deepcopy(cfg)  # init_detector drops the backbone's init_cfg from the config it gets
    device = "cuda" if str((cfg.get(META_KEY) or {}).get("device", "cpu")).startswith("cuda") else "cpu"
    model = init_detector(model_cfg, str(checkpoint), device=device)
    model.eval()
    pipeline = _window_pipeline(dataset["pipeline"])
    metric_cfg = dict(cfg[f"{split}_evaluator"], classwise=True)
    if outfile_prefix:
        metric_cfg["outfile_prefix"] = outfile_prefix
    evaluator = Evaluator(METRICS.build(metric_cfg))
    evaluator.dataset_meta = {"classes": classes}
    settings = inference_of(cfg)
    images = json.loads(ann_file.read_text())["images"]
    load = _loader(dataset["pipeline"])
    with torch.no_grad():
        for image in images:
            full = load(image_root / image["file_name"])
            sample = predict_sliced(model, pipeline, full, tiling, settings)
            sample.set_metainfo({"img_id": image["id"], "ori_shape": full.shape[:2]})
            evaluator.process([sample], None)
    metrics = evaluator.evaluate(len(images))
    return {k: float(v) for k, v in metrics.items()}, sum(p.numel() for p in model.parameters())


def predict_sliced(model: Any, pipeline: Any, image: Any, tiling: Tiling, settings: Inference) -> Any:
    """One full image (HxWx3 as decoded) → a ``DetDataSample`` whose ``pred_instances`` are the windows'
    boxes in full-image pixels, merged by class-wise NMS (``settings.iou_threshold``) and capped at
    ``settings.max_per_image`` (highest scores first)."""
    import numpy as np
    import torch
    from mmcv.ops import batched_nms
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    height, width = image.shape[:2]
    boxes, scores, labels = [], [], []
    for window in tile_windows(width, height, tiling):
        crop = np.ascontiguousarray(
            image[window.y : window.y + window.height, window.x : window.x + window.width]
        )
        data = pipeline({"img": crop, "img_id": 0})
        result = model.test_step({"inputs": [data["inputs"]], "data_samples": [data["data_samples"]]})[0]
        pred = result.pred_instances
        shift = pred.bboxes.new_tensor([window.x, window.y, window.x, window.y])
        boxes.append(pred.bboxes + shift)
        scores.append(pred.scores)
        labels.append(pred.labels)
    merged = InstanceData()
    all_boxes, all_scores, all_labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
    if len(all_boxes):
        # As the model's own nms_pre: only the best candidates enter the (quadratic) merge. One window's
        # boxes (at most ``cap``) always all enter it.
        cap = settings.max_per_image
        candidates = torch.arange(len(all_scores), device=all_scores.device)
        if len(candidates) > settings.merge_candidates:
            candidates = all_scores.topk(settings.merge_candidates).indices
        _, keep = batched_nms(all_boxes[candidates], all_scores[candidates], all_labels[candidates],
                              {"type": "nms", "iou_threshold": settings.iou_threshold})  # fmt: skip
        keep = candidates[keep[:cap]].sort().values  # the windows' order: one window keeps the model's
        merged.bboxes, merged.scores, merged.labels = all_boxes[keep], all_scores[keep], all_labels[keep]
    else:
        merged.bboxes, merged.scores, merged.labels = all_boxes, all_scores, all_labels
    sample = DetDataSample()
    sample.pred_instances = merged
    return sample


def _window_pipeline(transforms: list[dict[str, Any]]) -> Any:
    """The test pipeline for an in-memory window: decoding replaced, annotations not loaded."""
    from mmcv.transforms import Compose

    steps = [dict(t) for t in transforms if t.get("type") not in ("LoadImageFromFile", "LoadAnnotations")]
    return Compose([{"type": "mmdet.LoadImageFromNDArray"}, *steps])


def _loader(transforms: list[dict[str, Any]]) -> Any:
    """Decodes an image file as the pipeline's ``LoadImageFromFile`` would (its color type and backend)."""
    import mmcv

    first = next((t for t in transforms if t.get("type") == "LoadImageFromFile"), {})
    flag = first.get("color_type", "color")
    backend = first.get("imdecode_backend", "cv2")

    def load(path: Path) -> Any:
        return mmcv.imfrombytes(path.read_bytes(), flag=flag, backend=backend)

    return load
