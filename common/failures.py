"""Why a training attempt failed: the one home of the failure kinds and of the classification of exceptions.

``raven.v1.FailureKind`` is the wire form. :class:`FailureKind` has the proto's names as values and its
numbers (declaration order; a unit test holds both equal to the proto), so it maps by name (the worker's
reports) and by number (the proto field, the run's stored row) without a table per service.

Plain Python: no grpc, protobuf, torch or mmdet import.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

OOM_PATTERNS = ("out of memory", "can't allocate memory", "cannot allocate memory")
DATASET_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError)
# warnings.formatwarning's "file:line: XWarning: ...", the line it quotes, mmengine's WARNING records
WARNING_LINE = re.compile(r":\d+: \w*Warning: |^\s*warnings\.warn\(| - WARNING - ")
ABSOLUTE_PATH = re.compile(r"(?<![\w.])(?:/[\w.+@~-]+)+/([\w.+@~-]+)")
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")
TRACEBACK_START = "Traceback (most recent call last):"


class FailureKind(StrEnum):
    """Values are the ``raven.v1.FailureKind`` names; ``int(kind)`` is its number (declaration order)."""

    UNSPECIFIED = "FAILURE_KIND_UNSPECIFIED"
    INVALID_DATASET = "INVALID_DATASET"
    INVALID_CONFIG = "INVALID_CONFIG"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    WORKER_LOST = "WORKER_LOST"
    CHILD_CRASHED = "CHILD_CRASHED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    ARTIFACT_MISMATCH = "ARTIFACT_MISMATCH"
    TIMED_OUT = "TIMED_OUT"

    @property
    def retryable(self) -> bool:
        """A crashed or killed training child (the OOM killer, an operator) says nothing final about the
        run: training_run requeues it, from its last checkpoint, while ``max_attempts`` allow. (Running out
        of memory is retried too when the batch can shrink: training_run's ``domain.attempts``.)"""
        return self is FailureKind.CHILD_CRASHED

    @property
    def number(self) -> int:
        """The ``raven.v1.FailureKind`` number."""
        return list(FailureKind).index(self)

    def __int__(self) -> int:
        return self.number

    @classmethod
    def from_number(cls, number: int) -> FailureKind:
        """The kind of a proto number; a number this build does not know is an INTERNAL_ERROR."""
        kinds = list(cls)
        return kinds[number] if 0 <= number < len(kinds) else cls.INTERNAL_ERROR

    @classmethod
    def _missing_(cls, value: object) -> FailureKind | None:
        """``FailureKind(3)``: rows stored the number before the kinds had one home."""
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(cls):
            return list(cls)[value]
        return None


@dataclass(frozen=True)
class Failure:
    """A failed attempt: ``message`` says what happened and what to do; ``details`` name culprits."""

    kind: FailureKind
    message: str
    details: tuple[str, ...] = ()

    @property
    def out_of_memory(self) -> bool:
        """Device or host memory ran out: a CUDA OOM, or the kernel's OOM killer ended the child (its
        ``CHILD_CRASHED`` reason says "out of memory"; a bare SIGKILL does not)."""
        message = self.message.lower()
        return self.kind is FailureKind.OUT_OF_MEMORY or any(p in message for p in OOM_PATTERNS)


def strip_paths(text: str) -> str:
    """Absolute paths cut to their file name: failure details name no install or server directories."""
    return ABSOLUTE_PATH.sub(r"\1", text)


def error_details(lines: Iterable[str], limit: int = 300) -> tuple[str, ...]:
    """The relevant error in a log or traceback: the innermost frame of the last traceback, its source line
    and the exception; without a traceback, the last exception line. Warnings are dropped, paths stripped.
    """
    kept = [line.rstrip() for line in lines if line.strip() and not WARNING_LINE.search(line)]
    starts = [i for i, line in enumerate(kept) if line.startswith(TRACEBACK_START)]
    picked: list[str] = []
    if starts:
        block = kept[starts[-1] + 1 :]
        frames = [i for i, line in enumerate(block) if line.startswith("  File ")]
        after = frames[-1] + 1 if frames else 0
        if frames:
            picked.append(block[frames[-1]])
            if (
                after < len(block)
                and block[after].startswith("    ")
                and set(block[after].strip()) - set("~^ ")
            ):
                picked.append(block[after])
        picked += [line for line in block[after:] if not line.startswith(" ")][:1]
    else:
        picked = [line for line in kept if EXCEPTION_LINE.match(line)][-1:]
    return tuple(strip_paths(line.strip())[:limit] for line in picked)


def is_out_of_memory(exc: BaseException) -> bool:
    """Host or device memory ran out: the one rule of the training child and of the worker's steps (torch's
    ``OutOfMemoryError`` is matched by name: no torch import)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    message = str(exc).lower()
    return any(p in message for p in OOM_PATTERNS)


def classify_exception(
    exc: BaseException, *, stage: str, device: str, config: dict[str, Any] | None = None
) -> Failure:
    """Maps an exception from building or running the training to a failure a person can act on.

    Args:
        exc: what was raised.
        stage: ``build`` (the MMDetection runner from its config) or ``train``.
        device: ``cpu`` or ``cuda``, named in the out-of-memory advice.
        config: the training config, for the batch size in the out-of-memory advice.
    """
    details = error_details("".join(traceback.format_exception(exc)).splitlines())
    text = f"{type(exc).__name__}: {exc}".strip()
    batch = ((config or {}).get("train_dataloader") or {}).get("batch_size")
    if is_out_of_memory(exc):
        return Failure(
            FailureKind.OUT_OF_MEMORY,
            f"training ran out of {device} memory (batch_size {batch}); lower batch_size or image_size",
            details,
        )
    if type(exc).__name__ in ("UnsafeCheckpoint", "UnpicklingError"):
        return Failure(FailureKind.INVALID_CONFIG, f"a checkpoint was refused as unsafe: {exc}", details)
    if isinstance(exc, DATASET_ERRORS):
        return Failure(FailureKind.INVALID_DATASET, f"a dataset file could not be read: {exc}", details)
    if stage == "build" and isinstance(exc, Exception):
        return Failure(
            FailureKind.INVALID_CONFIG,
            f"the MMDetection config could not be built ({text[:500]}); check template and hyperparameters",
            details,
        )
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return Failure(FailureKind.CHILD_CRASHED, f"the training process was interrupted ({text})", details)
    return Failure(FailureKind.INTERNAL_ERROR, f"training failed unexpectedly: {text[:500]}", details)
