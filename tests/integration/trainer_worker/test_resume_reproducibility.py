"""A killed-and-resumed training reproduces the uninterrupted one exactly (CPU), and its history is whole.

The same seed and data train for ``EPOCHS`` epochs twice: once straight through, once SIGKILLed right after
epoch ``KILLED_AFTER``'s checkpoint and resumed in a fresh work dir through the artifact store, as a worker on
another machine would (``CheckpointSync``: the resume checkpoint and the run's best so far). Every training
iteration's losses, the per-epoch history (train loss, lr, val mAP) and the final val/test metrics must be
equal to the last bit, and the history must hold every epoch once, the killed attempt's included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from common.artifacts import ArtifactStore
from services.trainer_worker.adapters.checkpoints import CheckpointSync
from services.trainer_worker.adapters.dataset_source import prepare_dataset
from services.trainer_worker.adapters.evaluation import read_history
from services.trainer_worker.adapters.training import TrainingProcess, latest_checkpoint
from services.trainer_worker.domain.outcome import Failure, TrainingResult
from tests.fixtures.synthetic_coco import make_dataset
from tests.integration.trainer_worker.test_training_process import CLASSES, SIDE, add_coco_info, spec_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EPOCHS = 3
KILLED_AFTER = 1


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("datasets")
    make_dataset(root / "tiny", n_images=16, size=SIDE, classes=CLASSES, seed=1)
    prepared = prepare_dataset(f"file://{root}", "tiny", root / "prepared", seed=0)
    add_coco_info(prepared)
    return prepared


async def train(process: TrainingProcess, kill_after_epoch: int | None = None) -> dict[int, dict[str, float]]:
    """Runs ``process`` to its end (SIGKILL after the given epoch's checkpoint); losses by iteration."""
    process.start()
    losses: dict[int, dict[str, float]] = {}
    async for event in process.events():
        if event.kind == "iter":
            losses[event.iter] = event.losses
        if event.kind == "epoch" and event.epoch == kill_after_epoch:
            process.kill()  # the epoch's checkpoint is on disk; its validation has not run yet
    return losses


def metrics_of(result: Any) -> dict[str, Any]:
    assert isinstance(result, TrainingResult), result
    return json.loads(Path(result.metrics_path).read_text())


async def test_a_killed_and_resumed_run_reproduces_the_uninterrupted_run_exactly(  # type: ignore[no-untyped-def]
    prepared, tmp_path: Path
) -> None:
    whole = TrainingProcess(spec_for(prepared, tmp_path / "whole", epochs=EPOCHS))
    whole_losses = await train(whole)
    expected = metrics_of(whole.outcome)

    store = ArtifactStore(str(tmp_path / "store"))
    first_dir, second_dir = tmp_path / "attempt-1", tmp_path / "attempt-2"
    first = TrainingProcess(spec_for(prepared, first_dir, epochs=EPOCHS, evaluate=False))
    first_losses = await train(first, kill_after_epoch=KILLED_AFTER)
    assert isinstance(first.outcome, Failure), first.outcome
    assert latest_checkpoint(first_dir) == first_dir / f"epoch_{KILLED_AFTER}.pth"
    resume_key = await CheckpointSync(store, "run-1", 1).sync(first_dir)
    second_sync = CheckpointSync(store, "run-1", 2)
    resume_from = await second_sync.download(resume_key, second_dir / "resume")
    await second_sync.download_best(second_dir)
    second = TrainingProcess(spec_for(prepared, second_dir, epochs=EPOCHS, resume_from=resume_from))
    second_losses = await train(second)
    resumed = metrics_of(second.outcome)

    per_epoch = max(whole_losses) // EPOCHS
    assert min(second_losses) == KILLED_AFTER * per_epoch + 1  # the resumed attempt trained the rest only
    assert {i: v for i, v in first_losses.items() if i <= KILLED_AFTER * per_epoch} == {
        i: v for i, v in whole_losses.items() if i <= KILLED_AFTER * per_epoch
    }
    assert second_losses == {i: v for i, v in whole_losses.items() if i > KILLED_AFTER * per_epoch}
    assert [h["epoch"] for h in resumed["history"]] == list(range(1, EPOCHS + 1))
    assert resumed["history"] == expected["history"]  # train loss, lr and val mAP of every epoch
    killed_attempt = read_history(first_dir)[:KILLED_AFTER]
    assert [{k: h[k] for k in ("epoch", "train_loss", "lr")} for h in killed_attempt] == [
        {k: h[k] for k in ("epoch", "train_loss", "lr")} for h in resumed["history"][:KILLED_AFTER]
    ]
    for key in ("val", "test", "best_epoch"):
        assert resumed[key] == expected[key], key
