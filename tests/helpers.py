"""Test helpers: tokens signed with the test secret, bearer metadata."""

from __future__ import annotations

import uuid

from common.auth import USER_PERMISSIONS, issue_worker_token, mint_token

JWT_SECRET = "test-secret-" + uuid.uuid4().hex


def token(
    subject: str = "alice", permissions: frozenset[str] | list[str] | None = None, ttl: float = 3600
) -> str:
    perms = USER_PERMISSIONS if permissions is None else permissions
    return mint_token(subject, list(perms), secret=JWT_SECRET, ttl_seconds=ttl)


def worker_token(subject: str = "worker-1", ttl: float = 3600) -> str:
    """A worker token as an operator issues it (``ravenctl token --worker``): only the worker permission."""
    return issue_worker_token(subject, secret=JWT_SECRET, ttl_seconds=ttl)


def bearer(tok: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {tok}"),)
