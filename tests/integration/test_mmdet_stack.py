"""Smoke test of the real stack: mmcv's compiled ops and an MMDetection model built from a shipped config."""

from pathlib import Path

import torch


def test_mmcv_compiled_nms_suppresses_overlapping_boxes() -> None:
    from mmcv.ops import nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert dets.shape == (2, 5)


def test_mmdet_model_builds_from_shipped_config_and_runs_forward() -> None:
    import mmdet
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules()
    configs = Path(mmdet.__file__).parent / ".mim" / "configs"
    config_path = configs / "rtmdet" / "rtmdet_tiny_8xb32-300e_coco.py"
    cfg = Config.fromfile(str(config_path))
    cfg.model.backbone.init_cfg = None  # never download weights
    cfg.model.bbox_head.num_classes = 3
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.zeros(1, 3, 128, 128))
        cls_scores, _ = model.bbox_head(feats)
    assert cls_scores[0].shape[1] == 3  # one channel per class
    assert sum(p.numel() for p in model.parameters()) > 1_000_000
