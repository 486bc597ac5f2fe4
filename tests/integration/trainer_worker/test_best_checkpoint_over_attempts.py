"""The best checkpoint of a resumed run is the best over all its attempts, not only the resuming one's.

mmengine's CheckpointHook restores the best score from the resume checkpoint, so a resumed attempt saves a
``best_*`` file only when it beats the earlier attempts; the earlier best must therefore travel with the run.
"""

from __future__ import annotations

import os
from pathlib import Path

from common.artifacts import ArtifactStore
from services.trainer_worker.adapters.checkpoints import CheckpointSync
from services.trainer_worker.adapters.evaluation import find_best_checkpoint

BEST = "best_coco_bbox_mAP_epoch_{}.pth"


def save(work_dir: Path, name: str, last: bool = False) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / name
    path.write_bytes(name.encode())
    if last:
        (work_dir / "last_checkpoint").write_text(str(path))
    return path


async def test_a_resumed_attempt_that_never_beats_the_earlier_best_keeps_it(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    first_dir, second_dir = tmp_path / "attempt-1", tmp_path / "attempt-2"
    first = CheckpointSync(store, "run-1", 1)
    save(first_dir, "epoch_1.pth", last=True)
    save(first_dir, BEST.format(1))
    await first.sync(first_dir)
    (first_dir / BEST.format(1)).unlink()  # epoch 2 is better: mmengine replaces the best file
    save(first_dir, BEST.format(2))
    await first.sync(first_dir)
    save(first_dir, "epoch_2.pth", last=True)
    resume = await first.sync(first_dir)
    assert [k for k in store.list("runs/run-1/checkpoints") if "best_" in k] == [
        f"runs/run-1/checkpoints/attempt-1/{BEST.format(2)}"
    ]

    second = CheckpointSync(store, "run-1", 2)
    await second.download(resume, second_dir / "resume")
    carried = await second.download_best(second_dir)
    save(second_dir, "epoch_3.pth", last=True)  # epoch 3 is worse: no best file of this attempt

    assert carried == second_dir / BEST.format(2)
    assert find_best_checkpoint(second_dir) == (second_dir / BEST.format(2), 2)
    await second.sync(second_dir)
    assert not [k for k in store.list("runs/run-1/checkpoints/attempt-2") if "best_" in k]  # not re-uploaded

    newer = save(second_dir, BEST.format(4))  # epoch 4 beats it
    os.utime(carried)  # whatever the files' times, the later epoch is the run's best
    assert find_best_checkpoint(second_dir) == (newer, 4)


async def test_without_an_earlier_best_nothing_is_carried(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    assert await CheckpointSync(store, "run-2", 2).download_best(tmp_path / "train") is None
