"""JWT claims auth (HS256 with a shared secret, RS256 with a key pair).

A token carries ``sub`` (the owner id), ``exp`` and ``permissions`` (a list of the names below).
Permissions mirror Raven Scan's claims; ``superadmin`` bypasses every check. Workers use a service identity
holding ``worker``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

import jwt

from common.errors import PermissionDenied, Unauthenticated


class Permission(StrEnum):
    VIEW_TRAINING_RUNS = "training_runs.view"
    VIEW_ALL_TRAINING_RUNS = "training_runs.view_all"
    CREATE_TRAINING_RUNS = "training_runs.create"
    EDIT_TRAINING_RUNS = "training_runs.edit"
    DELETE_TRAINING_RUNS = "training_runs.delete"
    CANCEL_TRAINING_RUNS = "training_runs.cancel"
    VIEW_MODELS = "models.view"
    VIEW_ALL_MODELS = "models.view_all"
    EDIT_MODELS = "models.edit"
    DELETE_MODELS = "models.delete"
    PUBLISH_MODELS = "models.publish"
    IMPORT_MODELS = "models.import"
    VIEW_STATISTICS = "statistics.view"
    SUPERADMIN = "superadmin"
    WORKER = "worker"


USER_PERMISSIONS = frozenset(p for p in Permission if p not in (Permission.SUPERADMIN, Permission.WORKER))


@dataclass(frozen=True)
class Principal:
    subject: str
    permissions: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_superadmin(self) -> bool:
        return Permission.SUPERADMIN in self.permissions

    @property
    def is_worker(self) -> bool:
        return Permission.WORKER in self.permissions

    def has(self, permission: str) -> bool:
        # The worker identity is a service identity: superadmin does not stand in for it, nor does it get
        # any user rights.
        if permission == Permission.WORKER:
            return self.is_worker
        if self.is_worker and not self.is_superadmin:
            return False
        return self.is_superadmin or permission in self.permissions

    def require(self, permission: str) -> None:
        if not self.has(permission):
            raise PermissionDenied(f"caller {self.subject!r} lacks the {permission!r} permission")

    def can_see_owner(self, owner: str, view_all: str) -> bool:
        return owner == self.subject or self.has(view_all)


class TokenVerifier:
    """Verifies bearer tokens. Only the configured algorithms are accepted (never "none")."""

    def __init__(
        self, *, secret: str = "", public_key: str = "", audience: str = "raven", issuer: str = "raven"
    ) -> None:
        if not secret and not public_key:
            raise ValueError("set RAVEN_JWT_SECRET (HS256) or RAVEN_JWT_PUBLIC_KEY (RS256)")
        self._key = public_key or secret
        self._algorithms = ["RS256"] if public_key else ["HS256"]
        self._audience = audience
        self._issuer = issuer
        self._cache: dict[str, tuple[Principal, float]] = {}

    CACHE_SIZE = 10_000

    def verify(self, token: str) -> Principal:
        """The token's principal.

        A verified token is cached until it expires, since signature checks are costly.
        """
        if not token:
            raise Unauthenticated("missing bearer token: send 'authorization: Bearer <jwt>' metadata")
        cached = self._cache.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() < expires:
                return principal
            del self._cache[token]
        principal, expires = self._verify(token)
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[token] = (principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired: mint a new one") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        permissions = claims.get("permissions", [])
        if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
            raise Unauthenticated("invalid token: 'permissions' must be a list of strings")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("invalid token: 'sub' must be a non-empty string")
        return Principal(subject=subject, permissions=frozenset(permissions)), float(claims["exp"])


def mint_token(
    subject: str,
    permissions: list[str] | frozenset[str],
    *,
    secret: str = "",
    private_key: str = "",
    ttl_seconds: float = 3600,
    audience: str = "raven",
    issuer: str = "raven",
) -> str:
    """Mint a token (dev CLI, worker identity, tests)."""
    now = int(time.time())
    claims = {
        "sub": subject,
        "permissions": sorted(permissions),
        "iat": now,
        "exp": now + int(ttl_seconds),
        "aud": audience,
        "iss": issuer,
    }
    if private_key:
        return jwt.encode(claims, private_key, algorithm="RS256")
    if not secret:
        raise ValueError("a secret or a private key is needed to mint tokens")
    return jwt.encode(claims, secret, algorithm="HS256")
