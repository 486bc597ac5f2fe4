"""Moves a run's resume checkpoints between the training work dir and the artifact store.

mmengine's CheckpointHook writes ``epoch_N.pth`` (or ``iter_N.pth``) and names the newest one in the work
dir's ``last_checkpoint`` file. After each new checkpoint the worker uploads it to
``runs/{run_id}/checkpoints/...`` and reports the key in its next heartbeat, so another worker can resume from
it. Older uploads are pruned only after training_run has recorded a newer key: a crash in between never leaves
the database pointing at a deleted file.

The best checkpoint so far (``best_*_epoch_N.pth``, CheckpointHook ``save_best``) is uploaded too and kept
apart from that pruning: an attempt that resumes the run fetches it into its work dir (``download_best``), so
the evaluation picks the best of the whole run. mmengine restores the best score on resume, so a resumed
attempt writes a best file of its own only when it beats the earlier attempts.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from common.artifacts import ArtifactStore
from common.logging import get_logger
from services.trainer_worker.domain.job import checkpoint_key
from services.trainer_worker.service_layer.ports import CheckpointStore

log = get_logger("trainer_worker.checkpoints")

LAST_CHECKPOINT_FILE = "last_checkpoint"
BEST_CHECKPOINT = re.compile(r"^best_.*_epoch_(\d+)\.pth$")


def best_epoch(path: Path | str) -> int | None:
    """N of a ``best_*_epoch_N.pth`` file, None for any other file."""
    match = BEST_CHECKPOINT.match(Path(path).name)
    return int(match.group(1)) if match else None


def newest_local_checkpoint(work_dir: Path) -> Path | None:
    """The checkpoint mmengine would resume from, or None before the first one is written."""
    pointer = work_dir / LAST_CHECKPOINT_FILE
    if pointer.is_file():
        named = Path(pointer.read_text().strip())
        candidate = named if named.is_absolute() else work_dir / named
        if candidate.is_file():
            return candidate
    found = [p for p in work_dir.glob("*.pth") if not p.name.startswith("best_")]
    return max(found, key=lambda p: p.stat().st_mtime_ns, default=None)


class CheckpointSync(CheckpointStore):
    """Uploads a run's newest checkpoint when it changed; downloads the one to resume from."""

    def __init__(self, store: ArtifactStore, run_id: str, attempt: int) -> None:
        self._store = store
        self._run_id = run_id
        self._attempt = attempt
        self._uploaded: dict[Path, tuple[int, int]] = {}  # local path → (size, mtime) at upload
        self._keys: list[str] = []  # uploaded keys, oldest first
        self.latest_key = ""
        self.best_key = ""  # this attempt's uploaded best checkpoint
        self.reported_key = ""  # the newest key training_run has acknowledged
        self._lock = asyncio.Lock()  # the periodic sync and the final sync on stop never upload at once

    async def download(self, key: str, dest_dir: Path) -> Path:
        """Fetches the resume checkpoint into ``dest_dir`` (a thread: it may be large)."""
        target = dest_dir / Path(key).name
        await asyncio.to_thread(self._store.get_file, key, target)
        log.info("resume checkpoint downloaded", run_id=self._run_id, key=key, bytes=target.stat().st_size)
        return target

    async def download_best(self, dest_dir: Path) -> Path | None:
        """Fetches the run's best checkpoint so far into ``dest_dir``; None when there is none.

        Any earlier attempt's: the latest epoch is the best, as each attempt saves one only when it beats the
        previous."""
        keys = await asyncio.to_thread(self._store.list, f"runs/{self._run_id}/checkpoints")
        best = max(
            (k for k in keys if best_epoch(k) is not None), key=lambda k: best_epoch(k) or 0, default=""
        )
        if not best:
            return None
        target = await self.download(best, dest_dir)
        stat = target.stat()
        self._uploaded[target] = (stat.st_size, stat.st_mtime_ns)  # stored already: never uploaded again
        return target

    async def sync(self, work_dir: Path) -> str:
        """Uploads the newest local checkpoint if it is new or changed; returns the newest uploaded key."""
        async with self._lock:
            await self._sync_best(work_dir)
            return await self._sync(work_dir)

    async def _sync_best(self, work_dir: Path) -> None:
        """Uploads a new best checkpoint, then drops this attempt's previous one."""
        found = [p for p in work_dir.glob("best_*.pth") if best_epoch(p) is not None]
        local = max(found, key=lambda p: best_epoch(p) or 0, default=None)
        try:
            signature = (local.stat().st_size, local.stat().st_mtime_ns) if local is not None else None
        except FileNotFoundError:
            return
        if local is None or signature is None or self._uploaded.get(local) == signature:
            return
        key = checkpoint_key(self._run_id, self._attempt, local.name)
        stored = await asyncio.to_thread(self._store.put_file, key, local)
        self._uploaded[local] = signature
        previous, self.best_key = self.best_key, stored.key
        if previous and previous != stored.key:
            await asyncio.to_thread(self._store.delete, previous)
        log.info("best checkpoint uploaded", run_id=self._run_id, key=stored.key, bytes=stored.size_bytes)

    async def _sync(self, work_dir: Path) -> str:
        local = newest_local_checkpoint(work_dir)
        if local is None:
            return self.latest_key
        try:
            stat = local.stat()
        except FileNotFoundError:  # mmengine rotated it away while we looked
            return self.latest_key
        signature = (stat.st_size, stat.st_mtime_ns)
        if self._uploaded.get(local) == signature:
            return self.latest_key
        key = checkpoint_key(self._run_id, self._attempt, local.name)
        stored = await asyncio.to_thread(self._store.put_file, key, local)
        self._uploaded[local] = signature
        if key in self._keys:
            self._keys.remove(key)
        self._keys.append(key)
        self.latest_key = stored.key
        log.info("checkpoint uploaded", run_id=self._run_id, key=stored.key, bytes=stored.size_bytes)
        return self.latest_key

    async def acknowledged(self, key: str) -> None:
        """training_run recorded ``key``: older uploads of this attempt are no longer needed for resume."""
        if not key or key not in self._keys:
            return
        self.reported_key = key
        stale = self._keys[: self._keys.index(key)]
        self._keys = self._keys[self._keys.index(key) :]
        for old in stale:
            await asyncio.to_thread(self._store.delete, old)

    async def delete_all(self) -> None:
        """After a successful run nothing needs resuming: drop every checkpoint of the run (all attempts)."""
        await asyncio.to_thread(self._store.delete_prefix, f"runs/{self._run_id}/checkpoints")
        self._keys.clear()
        self.latest_key = ""
