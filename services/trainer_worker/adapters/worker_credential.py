"""The worker's credential: a pre-issued worker token, never the JWT signing key.

An operator issues the token (``ravenctl token --worker``) and hands it to the worker as
``RAVEN_WORKER_TOKEN`` or, better, as a mounted secret file named by ``RAVEN_WORKER_TOKEN_FILE``. The file is
re-read whenever it changes (Kubernetes updates a mounted Secret in place), so rotating the token needs no
restart. The token opens the worker RPCs of training_run and nothing else; a worker refuses to start when it
is handed the signing key, so a compromised worker cannot mint a user or superadmin token.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from common.auth import WorkerTokenInfo, inspect_worker_token
from common.logging import get_logger
from common.settings import Settings

log = get_logger("trainer_worker.credential")
ISSUE_HINT = "issue one with `ravenctl token --worker` (see README: Worker tokens)"
EXPIRY_WARNING_SECONDS = 3 * 24 * 3600


class WorkerCredentialError(Exception):
    """The worker is configured with no usable credential, or with one it must not hold."""


def refuse_signing_keys(settings: Settings) -> None:
    """A worker holding RAVEN_JWT_SECRET or RAVEN_JWT_PRIVATE_KEY could mint any token: it does not start."""
    held = [
        name
        for name, value in (
            ("RAVEN_JWT_SECRET", settings.jwt_secret),
            ("RAVEN_JWT_PRIVATE_KEY", settings.jwt_private_key),
        )
        if value
    ]
    if held:
        raise WorkerCredentialError(
            f"the worker was given the JWT signing key ({', '.join(held)}): remove it from the worker's "
            f"environment and give it a worker token in RAVEN_WORKER_TOKEN_FILE or RAVEN_WORKER_TOKEN; "
            f"{ISSUE_HINT}"
        )


class WorkerCredential:
    """Callable returning the current worker token (for the ``authorization`` metadata of each call)."""

    def __init__(self, *, token: str = "", path: str = "", clock: Callable[[], float] = time.time) -> None:
        if bool(token) == bool(path):
            which = "both are set" if token else "neither is set"
            raise WorkerCredentialError(
                f"set exactly one of RAVEN_WORKER_TOKEN_FILE and RAVEN_WORKER_TOKEN ({which}); {ISSUE_HINT}"
            )
        self._path = Path(path) if path else None
        self._clock = clock
        self._stamp: tuple[int, int, int] | None = None
        self._token = ""
        if self._path is None:
            self._token, self.info = token.strip(), self._check(token.strip(), "RAVEN_WORKER_TOKEN")
        else:
            self._reload(initial=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerCredential:
        return cls(token=settings.worker_token, path=settings.worker_token_file)

    def __call__(self) -> str:
        if self._path is not None:
            self._reload(initial=False)
        return self._token

    def _check(self, token: str, source: str) -> WorkerTokenInfo:
        try:
            info = inspect_worker_token(token)
        except ValueError as exc:
            raise WorkerCredentialError(f"{source}: {exc}") from exc
        left = info.expires_at - self._clock()
        if left <= 0:
            raise WorkerCredentialError(
                f"{source}: the worker token {info.token_id} has expired; {ISSUE_HINT}"
            )
        if left < EXPIRY_WARNING_SECONDS:
            log.warning(
                "worker token expires soon: rotate it", token_id=info.token_id, seconds_left=int(left)
            )
        return info

    def _reload(self, *, initial: bool) -> None:
        assert self._path is not None
        source = f"RAVEN_WORKER_TOKEN_FILE {self._path}"
        try:
            stat = os.stat(self._path)  # follows the symlinks of a mounted Secret
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            token = self._path.read_text().strip()
        except OSError as exc:
            problem = WorkerCredentialError(f"{source} cannot be read ({exc.strerror}); {ISSUE_HINT}")
        else:
            try:
                info = self._check(token, source)
            except WorkerCredentialError as exc:
                problem = exc
            else:
                if not initial and info.token_id != self.info.token_id:
                    log.info("worker token rotated", token_id=info.token_id, expires_at=int(info.expires_at))
                self._stamp, self._token, self.info = stamp, token, info
                return
        if initial:
            raise problem
        # Mid-rotation or a bad write: keep the token in hand and look again at the next call.
        log.error("worker token file not usable; keeping the current token", reason=str(problem))
