"""Child processes that die with the worker.

A training child left behind by a SIGKILLed worker would be re-parented and keep training beside the
attempt that resumes the run. ``start_child`` runs the target behind ``die_with_parent``: Linux's
``PR_SET_PDEATHSIG`` (the kernel SIGKILLs the child when the thread that started it ends), and a watchdog
thread that notices the re-parenting where the signal is unavailable. Start children from the event loop's
thread: the death signal follows the starting thread, not the process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
WATCHDOG_SECONDS = 1.0
CGROUP_ROOT = Path("/sys/fs/cgroup")


def start_child(ctx: Any, target: Callable[..., Any], args: tuple[Any, ...], name: str) -> Any:
    """Starts ``target(*args)`` in a ``ctx`` (multiprocessing context) process that dies with this one."""
    process = ctx.Process(target=_guarded, args=(os.getpid(), target, args), name=name)
    process.start()
    return process


def die_with_parent(parent_pid: int, poll_seconds: float = WATCHDOG_SECONDS) -> None:
    """In the child, first thing: be killed when ``parent_pid`` goes away."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent_pid, poll_seconds), name="parent-watchdog", daemon=True
    ).start()


def oom_kills() -> int | None:
    """The out-of-memory kills counted in this process's cgroup (v2 ``memory.events``); None if unreadable."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                events = CGROUP_ROOT / line[3:].strip().lstrip("/") / "memory.events"
                for entry in events.read_text().splitlines():
                    key, _, value = entry.partition(" ")
                    if key == "oom_kill":
                        return int(value)
    except (OSError, ValueError):
        return None
    return None


def _guarded(parent_pid: int, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    die_with_parent(parent_pid)
    target(*args)


def _watch_parent(parent_pid: int, poll_seconds: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_seconds)
    os.kill(os.getpid(), signal.SIGKILL)
