"""The worker's credential: a worker token from RAVEN_WORKER_TOKEN or a file re-read on rotation, no key."""

import os
from pathlib import Path

import pytest

from common.auth import inspect_worker_token, issue_worker_token, mint_token
from common.settings import Settings
from services.trainer_worker.adapters.worker_credential import (
    WorkerCredential,
    WorkerCredentialError,
    refuse_signing_keys,
)

SECRET = "unit-secret"


def worker_token(ttl: float = 600) -> str:
    return issue_worker_token("pool", secret=SECRET, ttl_seconds=ttl)


def rotate(path: Path, token: str) -> None:
    """As Kubernetes updates a mounted Secret: write aside, then swap atomically."""
    staged = path.with_suffix(".new")
    staged.write_text(token + "\n")
    os.replace(staged, path)


@pytest.mark.parametrize("key", ["jwt_secret", "jwt_private_key"])
def test_the_worker_refuses_to_start_with_a_signing_key(key: str) -> None:
    with pytest.raises(WorkerCredentialError, match=f"signing key \\(RAVEN_{key.upper()}\\)"):
        refuse_signing_keys(Settings(**{key: "k", "worker_token": worker_token()}))  # type: ignore[arg-type]
    refuse_signing_keys(Settings(worker_token=worker_token(), jwt_public_key="verification only"))


def test_the_token_comes_from_the_environment() -> None:
    token = worker_token()
    credential = WorkerCredential.from_settings(Settings(worker_token=f" {token}\n"))
    assert credential() == token
    assert credential.info.token_id == inspect_worker_token(token).token_id


@pytest.mark.parametrize(("token", "path"), [("", ""), ("t", "/x")])
def test_exactly_one_source_is_required(token: str, path: str) -> None:
    with pytest.raises(
        WorkerCredentialError, match="exactly one of RAVEN_WORKER_TOKEN_FILE and RAVEN_WORKER_TOKEN"
    ):
        WorkerCredential(token=token, path=path)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (mint_token("root", ["superadmin"], secret=SECRET), "only the 'worker' permission"),
        (mint_token("dev", ["training_runs.create"], secret=SECRET), "only the 'worker' permission"),
        (issue_worker_token("pool", secret=SECRET, ttl_seconds=-5), "has expired"),
        ("not-a-token", "not a JWT"),
    ],
)
def test_a_wrong_credential_stops_the_worker_at_start(token: str, reason: str) -> None:
    with pytest.raises(WorkerCredentialError, match=reason):
        WorkerCredential(token=token)


def test_a_missing_file_stops_the_worker_at_start(tmp_path: Path) -> None:
    with pytest.raises(WorkerCredentialError, match="cannot be read"):
        WorkerCredential(path=str(tmp_path / "absent"))


def test_a_rotated_file_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "token"
    first, second = worker_token(), worker_token()
    rotate(path, first)
    credential = WorkerCredential(path=str(path))
    assert credential() == first and credential() == first
    rotate(path, second)
    assert credential() == second
    assert credential.info.token_id == inspect_worker_token(second).token_id


def test_a_bad_rotation_keeps_the_current_token_until_a_good_one_arrives(tmp_path: Path) -> None:
    path = tmp_path / "token"
    good = worker_token()
    rotate(path, good)
    credential = WorkerCredential(path=str(path))
    rotate(path, mint_token("root", ["superadmin"], secret=SECRET))
    assert credential() == good
    path.unlink()
    assert credential() == good
    fixed = worker_token()
    rotate(path, fixed)
    assert credential() == fixed
