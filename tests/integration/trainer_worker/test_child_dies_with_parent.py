"""A training child started the way the worker starts it dies when the worker is SIGKILLed alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
WORKER = """
import multiprocessing, time
from services.trainer_worker.adapters.child_process import start_child
if __name__ == "__main__":
    child = start_child(multiprocessing.get_context("spawn"), time.sleep, (120,), "raven-training")
    print(child.pid, flush=True)
    time.sleep(120)
"""
# The fallback alone (no PR_SET_PDEATHSIG): a busy child with only the parent watchdog thread
WATCHDOG_ONLY = """
import multiprocessing, os, threading, time
from services.trainer_worker.adapters.child_process import _watch_parent

def busy(parent_pid):
    threading.Thread(target=_watch_parent, args=(parent_pid, 0.1), daemon=True).start()
    time.sleep(120)

if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=busy, args=(os.getpid(),))
    child.start()
    print(child.pid, flush=True)
    time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie nobody reaps (no init in a container) is dead too


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.timeout(60)
@pytest.mark.parametrize("script", [WORKER, WATCHDOG_ONLY], ids=["pdeathsig-and-watchdog", "watchdog-only"])
def test_the_child_dies_when_its_worker_is_killed(script: str, tmp_path: Path) -> None:
    main = tmp_path / "worker_main.py"  # a file, not -c: spawn children import their target from it
    main.write_text(script)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, str(main)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None
        child = int(worker.stdout.readline())
        assert alive(child)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        deadline = time.monotonic() + 5
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(child), "the training child outlived its killed worker"
    finally:
        worker.kill()
        if "child" in locals() and alive(child):
            os.kill(child, signal.SIGKILL)
