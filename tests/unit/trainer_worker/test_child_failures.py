"""How a training child that ended without a report is described: the kind, the message, the details."""

from __future__ import annotations

import signal
from pathlib import Path

from common.failures import FailureKind, error_details
from services.trainer_worker.adapters.training import crash_failure
from services.trainer_worker.service_layer.attempt import remove_stale_attempts

INSTALL = "/opt/venv/lib/python3.12/site-packages"
WARNINGS_AND_A_TRACEBACK = [
    "12/03 00:00:01 - mmengine - INFO - Epoch(train) [1][10/20]  loss: 1.2",
    f"{INSTALL}/mmengine/runner/checkpoint.py:347: FutureWarning: You are using `torch.load`",
    "  checkpoint = torch.load(filename, map_location=map_location)",
    "Traceback (most recent call last):",
    f'  File "{INSTALL}/mmengine/runner/runner.py", line 1777, in train',
    "    model = self.train_loop.run()",
    '  File "/srv/raven/work/run-1/attempt-1/custom_loss.py", line 12, in forward',
    "    return torch.log(x) / zero",
    "           ~~~~~~~~~~~~~^~~~~",
    "ZeroDivisionError: division by zero",
    f"{INSTALL}/torch/utils/data/dataloader.py:557: UserWarning: This DataLoader will create 8 workers",
    "  warnings.warn(_create_warning_msg(",
]


def test_details_carry_the_last_frame_and_the_exception_without_warnings_or_paths() -> None:
    details = error_details(WARNINGS_AND_A_TRACEBACK)

    assert details == (
        'File "custom_loss.py", line 12, in forward',
        "return torch.log(x) / zero",
        "ZeroDivisionError: division by zero",
    )
    assert not any("Warning" in line or "/" in line.replace(" / ", "") for line in details)


def test_a_log_of_only_warnings_gives_no_details() -> None:
    lines = [line for line in WARNINGS_AND_A_TRACEBACK if "Warning" in line or "warnings.warn" in line]
    assert error_details(lines) == ()


def test_a_sigkilled_child_is_a_retryable_crash_named_as_a_possible_out_of_memory_kill(
    tmp_path: Path,
) -> None:
    log = tmp_path / "train.log"
    log.write_text("\n".join(WARNINGS_AND_A_TRACEBACK[:3]) + "\n")

    unknown = crash_failure(-signal.SIGKILL, log, oom_killed=None)
    by_oom = crash_failure(-signal.SIGKILL, log, oom_killed=True)
    not_oom = crash_failure(-signal.SIGKILL, log, oom_killed=False)

    for failure in (unknown, by_oom, not_oom):
        assert failure.kind is FailureKind.CHILD_CRASHED and failure.kind.retryable
        assert "SIGKILL" in failure.message and "signal 9" in failure.message
        assert not any("Warning" in line or INSTALL in line for line in failure.details)
    assert "e.g. by the out-of-memory killer" in unknown.message
    assert by_oom.message.startswith("the training process ran out of memory")
    assert "out-of-memory" not in not_oom.message


def test_a_child_that_exited_without_a_result_reports_its_traceback_not_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("\n".join(WARNINGS_AND_A_TRACEBACK) + "\n")

    failure = crash_failure(1, log, oom_killed=None)

    assert failure.kind is FailureKind.CHILD_CRASHED and "status 1" in failure.message
    assert failure.details[-1] == "ZeroDivisionError: division by zero"
    assert not any("Warning" in line or INSTALL in line for line in failure.details)


def test_only_signal_kills_and_crashes_retry() -> None:
    assert FailureKind.CHILD_CRASHED.retryable
    for kind in (FailureKind.INVALID_CONFIG, FailureKind.INVALID_DATASET, FailureKind.OUT_OF_MEMORY):
        assert not kind.retryable


def test_a_new_attempt_removes_the_earlier_attempts_directories_of_its_run_only(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-1"
    for name in ("attempt-1", "attempt-2", "attempt-3", "attempt-4", "notes"):
        (run_dir / name / "train").mkdir(parents=True)
    (tmp_path / "run-2" / "attempt-1").mkdir(parents=True)

    removed = remove_stale_attempts(run_dir, attempt=3)

    assert sorted(p.name for p in removed) == ["attempt-1", "attempt-2"]
    assert sorted(p.name for p in run_dir.iterdir()) == ["attempt-3", "attempt-4", "notes"]
    assert (tmp_path / "run-2" / "attempt-1").is_dir()
    assert remove_stale_attempts(tmp_path / "missing", attempt=2) == []
