"""The tile cache's bound (RAVEN_TILE_CACHE_MAX_BYTES): least recently used entries go first, never one a run
uses (its tiles link points at it), over real files and real cut tiles."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

from common.settings import Settings
from common.tiling import Tiling
from services.trainer_worker.adapters.dataset_source import prepare_dataset
from services.trainer_worker.adapters.tile_cache import (
    ENTRY_ANN,
    LAST_USED,
    LINK_NAME,
    SIZE,
    STALE_BUILD_SECONDS,
    USERS_DIR,
    _use,
    evict,
    in_use,
    tiled_train,
)
from services.trainer_worker.domain.dataset import PreparedDataset
from services.trainer_worker.domain.tiling import TILES_DIR
from tests.fixtures.tiny_objects import make_tiny_object_dataset

KB = 1000


def entry(cache: Path, key: str, size: int, used_at: float) -> Path:
    """An entry of ``size`` bytes of tiles, last used at ``used_at``."""
    path = cache / key
    (path / TILES_DIR).mkdir(parents=True)
    (path / TILES_DIR / "tile_0.png").write_bytes(b"\0" * size)
    (path / ENTRY_ANN).write_text("{}")
    (path / LAST_USED).touch()
    os.utime(path / LAST_USED, (used_at, used_at))
    return path


def used_by(run_dir: Path, path: Path, used_at: float) -> Path:
    """A run's data dir whose tiles link points at ``path`` (as ``tiled_train`` leaves it)."""
    run_dir.mkdir(parents=True)
    _use(path, run_dir / LINK_NAME)
    os.utime(path / LAST_USED, (used_at, used_at))
    return run_dir


def test_least_recently_used_entries_go_first_and_one_in_use_stays(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    old, busy, new = (entry(cache, k, 10 * KB, t) for k, t in (("old", 100), ("busy", 200), ("new", 300)))
    run = used_by(tmp_path / "runs" / "r1", busy, 200)
    building = cache / f"new2.building-{os.getpid()}-1"  # an entry being cut: neither counted nor touched
    (building / TILES_DIR).mkdir(parents=True)
    assert in_use(busy) and not in_use(old)

    assert evict(cache, 25 * KB) == ["old"]  # 30 KB: the oldest goes, 20 KB fit
    assert not old.exists() and busy.exists() and new.exists() and building.exists()
    assert evict(cache, 25 * KB) == []  # within the bound: nothing more
    assert evict(cache, 5 * KB) == ["new"]  # the busy one is older, but a run reads its tiles
    assert busy.exists() and (run / LINK_NAME / "tile_0.png").is_file()

    shutil.rmtree(run)  # the run ended: its scratch (and tiles link) removed
    assert not in_use(busy) and list((busy / USERS_DIR).iterdir()) == []  # the stale back link is gone
    assert evict(cache, 5 * KB) == ["busy"] and building.exists()

    crashed = cache / "lost.building-1-2"  # left by an attempt that died while cutting, long ago
    (crashed / TILES_DIR).mkdir(parents=True)
    old_time = time.time() - STALE_BUILD_SECONDS - 60
    os.utime(crashed, (old_time, old_time))
    evict(cache, 5 * KB)
    assert not crashed.exists() and building.exists()


def test_an_entry_is_sized_once_from_its_size_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    kept = entry(cache, "a", 10 * KB, 1)
    assert evict(cache, 100 * KB) == [] and int((kept / SIZE).read_text()) >= 10 * KB  # counted, then kept
    (kept / SIZE).write_text(str(200 * KB))  # what eviction believes: nothing is walked again
    assert evict(cache, 100 * KB) == ["a"]


def test_a_link_moved_to_another_entry_no_longer_holds_the_first(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, second = entry(cache, "a", KB, 1), entry(cache, "b", KB, 2)
    run = used_by(tmp_path / "r1", first, 1)
    _use(second, run / LINK_NAME)  # the same run dir re-linked (a later attempt's other tiling)
    assert not in_use(first) and in_use(second)


def test_tiled_runs_keep_the_cache_within_its_bound(tmp_path: Path) -> None:
    make_tiny_object_dataset(tmp_path / "datasets" / "tiny", n_images=6, size=400, objects=(3, 6), seed=4,
                             split=(1, 1))  # fmt: skip
    cache = tmp_path / "cache"

    def prepared(run: str) -> PreparedDataset:
        """The run's images in its own scratch, as a dataset version's are (a local plain dataset's tiles
        link sits in the dataset's directory instead, and holds its entry until it is linked elsewhere)."""
        found = prepare_dataset(f"file://{tmp_path / 'datasets'}", "tiny", tmp_path / run / "data", seed=0)
        shutil.copytree(found.image_root, tmp_path / run / "images")
        return dataclasses.replace(found, image_root=tmp_path / run / "images")

    first = tiled_train(prepared("run1"), Tiling(160, 32, 0.5), 0, cache, max_bytes=1)
    files = [f for f in (cache / first.key).rglob("*") if f.is_file() and not f.is_symlink()]
    one_entry = sum(f.stat().st_size for f in files)
    assert first.evicted == () and one_entry > 0  # over the bound, but run1 uses it
    second = tiled_train(prepared("run2"), Tiling(160, 0, 0.5), 0, cache, max_bytes=one_entry + KB)
    assert second.evicted == () and {p.name for p in cache.iterdir()} == {first.key, second.key}  # both used

    shutil.rmtree(tmp_path / "run1")  # run1's scratch removed when it ended
    again = tiled_train(prepared("run3"), Tiling(160, 0, 0.5), 0, cache, max_bytes=one_entry + KB)
    assert again.cached and again.evicted == (first.key,)
    assert [p.name for p in cache.iterdir()] == [second.key]
    assert (tmp_path / "run3" / "images" / LINK_NAME).resolve() == (cache / second.key / TILES_DIR).resolve()


def test_the_bound_is_a_worker_setting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert Settings().tile_cache_max_bytes == 20 * 2**30
    monkeypatch.setenv("RAVEN_TILE_CACHE_MAX_BYTES", "0")
    assert Settings().tile_cache_max_bytes == 0
