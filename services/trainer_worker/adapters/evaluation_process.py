"""Scoring a model on a prepared split in a child process (mmengine/torch load there only).

The model's stored config is filled with the split (as the test split: the one the analysis keeps the raw
predictions of), passes the config gate again, and ``evaluation.evaluate_checkpoint`` + the training's own
test split analysis (``evaluation._analyze_test``: pycocotools, unrounded, plots) run on it; so an
evaluation and a training run's test evaluation are the same code. The child dies with the worker
(``child_process.start_child``); ``kill`` ends it at once (an evaluation keeps no state worth a grace period).
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.trainer_worker.adapters.child_process import start_child
from services.trainer_worker.domain.dataset import PreparedDataset

LOG_FILE = "evaluation.log"
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class EvaluationSpec:
    config: dict[str, Any]  # the model's stored config (data, relative paths)
    checkpoint: str  # local, sha256-checked
    prepared: PreparedDataset  # test_ann = the split to score
    work_dir: str
    device: str


@dataclass(frozen=True)
class Scored:
    metrics: dict[str, Any]  # evaluation.detection_metrics' shape plus recommended_score_threshold
    files: tuple[Path, ...]
    inference: dict[str, Any]  # how it predicted: EvaluationInference's fields (common/inference_settings)


@dataclass(frozen=True)
class ScoringFailed(Exception):
    kind: str  # FailureKind name
    message: str


def for_split(prepared: PreparedDataset, split: str) -> PreparedDataset:
    """The prepared dataset with ``split``'s annotations in the test slot."""
    ann = {"train": prepared.train_ann, "val": prepared.val_ann, "test": prepared.test_ann}[split]
    if ann is None:
        raise ScoringFailed("INVALID_DATASET", f"the version's {split} split has no images")
    return dataclasses.replace(prepared, test_ann=ann)


class EvaluationProcess:
    def __init__(self, spec: EvaluationSpec) -> None:
        self.spec = spec
        self._ctx = multiprocessing.get_context("spawn")
        self._queue: Any = self._ctx.Queue()
        self._process: Any = None

    async def run(self) -> Scored:
        """Starts the child and waits for its answer; raises ``ScoringFailed``."""
        Path(self.spec.work_dir).mkdir(parents=True, exist_ok=True)
        self._process = start_child(self._ctx, _child_main, (self.spec, self._queue), "raven-evaluation")
        while True:
            answer = await asyncio.to_thread(_get, self._queue, POLL_SECONDS)
            if answer is not None:
                break
            if not self._process.is_alive():
                answer = await asyncio.to_thread(_get, self._queue, POLL_SECONDS)
                if answer is None:
                    code = self._process.exitcode
                    raise ScoringFailed(
                        "CHILD_CRASHED", f"the evaluation process ended without a result ({code})"
                    )
                break
        await asyncio.to_thread(self._process.join, 10)
        if answer[0] == "ok":
            return Scored(answer[1], tuple(Path(p) for p in answer[2]), answer[3])
        raise ScoringFailed(answer[1], answer[2])

    def kill(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()


def _get(queue: Any, timeout: float) -> Any:
    try:
        return queue.get(timeout=timeout)
    except Exception:
        return None


def _child_main(spec: EvaluationSpec, out: Any) -> None:
    log = open(Path(spec.work_dir) / LOG_FILE, "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    if spec.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    elif spec.device.startswith("cuda:"):
        os.environ["CUDA_VISIBLE_DEVICES"] = spec.device.split(":", 1)[1]
    try:
        scored = _score(spec)
        answer: tuple[Any, ...] = ("ok", scored.metrics, [str(p) for p in scored.files], scored.inference)
    except BaseException as exc:
        traceback.print_exc()
        from common.failures import classify_exception

        failure = classify_exception(exc, stage="train", device=spec.device, config=spec.config)
        message = failure.message.replace("training", "evaluation")
        answer = ("error", failure.kind.value, message)
    out.put(answer)
    out.close()
    out.join_thread()
    log.flush()


def _score(spec: EvaluationSpec) -> Scored:
    from common.checkpoint_safety import install_safe_globals
    from common.config_gate import check_config
    from common.inference_settings import inference_of
    from common.mmdet_fill import fill_dataset
    from services.trainer_worker.adapters.evaluation import _analyze_test, evaluate_checkpoint

    install_safe_globals()  # load_from goes through torch.load(weights_only=True)
    work_dir = Path(spec.work_dir)
    # As a resume from the model's checkpoint: it holds every weight, so neither a base model nor backbone
    # weights are fetched (evaluate_checkpoint loads it without resuming).
    checkpoint = Path(spec.checkpoint)
    cfg = fill_dataset(
        spec.config, spec.prepared, work_dir, device=spec.device, load_from=checkpoint, resume_from=checkpoint
    )
    check_config(cfg.to_dict())  # the gate again, right before anything is built (defence in depth)
    evaluate_checkpoint(cfg, checkpoint, "test", work_dir)
    analysis = _analyze_test(cfg, work_dir)
    return Scored(analysis.metrics, tuple(analysis.files), inference_of(cfg).record())
