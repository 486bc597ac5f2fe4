"""How an evaluation predicts with a model, read from the model's config: the one rule the worker follows
(``services/trainer_worker/adapters/sliced_inference.py``) and trained_model records.

A model whose run trained on tiles (the config's ``raven.hyperparams`` carry ``tiling_*``) is scored by sliced
inference on the full images: windows of ``tile_size`` px sharing ``overlap`` px, each window's boxes shifted
back and all of them merged with class-wise NMS at the model's own test-time IoU threshold, the best
``max_per_image * MERGE_CANDIDATES_PER_KEPT`` entering the merge and ``max_per_image`` kept. Any other model
predicts on the full images. Its test-time score threshold and per-image cap apply either way.

``Inference.record()`` is the ``raven.v1.EvaluationInference`` message as a dict (its field names): the worker
reports it with a completed evaluation, the training's metrics JSON carries it, and trained_model stores it
(for an evaluation recorded from a training run, read here from the model's stored config, the config the
worker evaluated with). Works on a plain dict (also after a JSON or Struct round trip: integral floats) and
on an mmengine ``Config``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from common.config_data import restore_types
from common.proto.raven.v1 import evaluations_pb2
from common.tiling import Tiling, from_flat

META_KEY = "raven"  # common.mmdet_config.META_KEY (not imported: that module loads the templates' rules)
MERGE_NMS = "class-wise NMS"
DEFAULT_NMS_IOU = 0.6
DEFAULT_MAX_PER_IMAGE = 100
DEFAULT_SCORE_THRESHOLD = 0.0
MERGE_CANDIDATES_PER_KEPT = 10


@dataclass(frozen=True)
class Inference:
    tiling: Tiling | None  # None: plain inference on the full images
    iou_threshold: float  # the model's test-time NMS IoU (the merge's, when sliced)
    max_per_image: int
    score_threshold: float

    @property
    def sliced(self) -> bool:
        return self.tiling is not None

    @property
    def merge_candidates(self) -> int:
        """As the model's own ``nms_pre``: only the best this many boxes of an image enter the merge."""
        return self.max_per_image * MERGE_CANDIDATES_PER_KEPT

    def record(self) -> dict[str, Any]:
        """``raven.v1.EvaluationInference`` as a dict (proto field names)."""
        out: dict[str, Any] = {
            "sliced": self.sliced,
            "max_per_image": self.max_per_image,
            "score_threshold": self.score_threshold,
        }
        if self.tiling is not None:
            out.update(
                tile_size=self.tiling.tile_size, overlap=self.tiling.overlap, merge=MERGE_NMS,
                merge_iou_threshold=self.iou_threshold, merge_candidates=self.merge_candidates,
            )  # fmt: skip
        return out


def inference_of(config: Any) -> Inference:
    """How a model with this config is evaluated (see the module docstring)."""
    meta = _get(config, META_KEY)
    tiling = from_flat(restore_types(dict(_get(meta, "hyperparams"))))
    test_cfg = _get(_get(config, "model"), "test_cfg")
    test_cfg = _get(test_cfg, "rcnn") or test_cfg  # two-stage detectors keep them under rcnn
    nms = _get(test_cfg, "nms")
    return Inference(
        tiling=tiling,
        iou_threshold=_number(nms.get("iou_threshold"), DEFAULT_NMS_IOU),
        max_per_image=int(_number(test_cfg.get("max_per_img"), DEFAULT_MAX_PER_IMAGE)),
        score_threshold=_number(test_cfg.get("score_thr"), DEFAULT_SCORE_THRESHOLD),
    )


PLAIN_FIELDS = ("sliced", "max_per_image", "score_threshold")  # the rest is for sliced inference only


def record_to_proto(record: Mapping[str, Any]) -> evaluations_pb2.EvaluationInference:
    """A record (``Inference.record()``, as stored) as the message; fields it does not know are left out."""
    message = evaluations_pb2.EvaluationInference()
    return json_format.ParseDict(dict(record), message, ignore_unknown_fields=True)


def record_from_proto(message: evaluations_pb2.EvaluationInference) -> dict[str, Any]:
    """The message as a record: ``sliced`` always (false is a fact), the tiling fields only when sliced."""
    names = [f.name for f in message.DESCRIPTOR.fields]
    return {n: getattr(message, n) for n in names if message.sliced or n in PLAIN_FIELDS}


def describe(record: Mapping[str, Any] | None, short: bool = False) -> str:
    """One line for people: ``sliced: 640 px tiles, 128 px overlap, class-wise NMS IoU 0.65`` or ``full
    images`` (``short``: ``sliced 640/128``, for a table cell); '' for an empty record (not recorded)."""
    if not record:
        return ""
    if not record.get("sliced"):
        return "full images"
    if short:
        return f"sliced {int(record.get('tile_size') or 0)}/{int(record.get('overlap') or 0)}"
    merge = record.get("merge") or MERGE_NMS
    iou = record.get("merge_iou_threshold")
    return (
        f"sliced: {int(record.get('tile_size') or 0)} px tiles, {int(record.get('overlap') or 0)} px "
        f"overlap, {merge}" + (f" IoU {float(iou):g}" if isinstance(iou, int | float) else "")
    )


def _get(container: Any, key: str) -> Any:
    """``container[key]`` when it is a mapping there, else an empty dict."""
    value = container.get(key) if hasattr(container, "get") else None
    return value if hasattr(value, "get") else {}


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
