"""JWT claims auth (HS256 with a shared secret, RS256 with a key pair).

A token carries ``sub`` (the owner id), ``exp`` and ``permissions`` (a list of the names below).
Permissions mirror Raven Scan's claims; ``superadmin`` bypasses every check. Every token carries a ``jti``
(its id), so one can be revoked (``RAVEN_JWT_REVOKED_IDS``).

Workers hold a pre-issued *worker token* (``issue_worker_token``, ``ravenctl token --worker``): only the
``worker`` permission, which opens the worker RPCs and nothing else. A worker never holds the signing key, so
a compromised worker cannot mint any other token.
"""

from __future__ import annotations

import time
import uuid
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
    VIEW_DATASETS = "datasets.view"
    VIEW_ALL_DATASETS = "datasets.view_all"
    CREATE_DATASETS = "datasets.create"
    DELETE_DATASETS = "datasets.delete"
    VIEW_EVALUATIONS = "evaluations.view"
    CREATE_EVALUATIONS = "evaluations.create"
    CANCEL_EVALUATIONS = "evaluations.cancel"
    SUPERADMIN = "superadmin"
    WORKER = "worker"


USER_PERMISSIONS = frozenset(p for p in Permission if p not in (Permission.SUPERADMIN, Permission.WORKER))
WORKER_TOKEN_TTL_SECONDS = 30 * 24 * 3600


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
            # str(): the permission's wire name ('training_runs.create'), not the enum's repr.
            raise PermissionDenied(f"caller {self.subject!r} lacks the {str(permission)!r} permission")

    def can_see_owner(self, owner: str, view_all: str) -> bool:
        return owner == self.subject or self.has(view_all)


class TokenVerifier:
    """Verifies bearer tokens. Only the configured algorithms are accepted (never "none")."""

    def __init__(
        self,
        *,
        secret: str = "",
        public_key: str = "",
        audience: str = "raven",
        issuer: str = "raven",
        revoked_ids: frozenset[str] = frozenset(),
    ) -> None:
        if not secret and not public_key:
            raise ValueError("set RAVEN_JWT_SECRET (HS256) or RAVEN_JWT_PUBLIC_KEY (RS256)")
        self._key = public_key or secret
        self._algorithms = ["RS256"] if public_key else ["HS256"]
        self._audience = audience
        self._issuer = issuer
        self._revoked = revoked_ids
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
        token_id = claims.get("jti")
        if token_id is not None and not isinstance(token_id, str):
            raise Unauthenticated("invalid token: 'jti' must be a string")
        if token_id and token_id in self._revoked:
            raise Unauthenticated(f"token {token_id} is revoked: ask an operator for a new one")
        if Permission.WORKER in permissions and not token_id:
            # A worker token lives for weeks: without an id it could not be revoked.
            raise Unauthenticated("invalid worker token: no 'jti'; issue one with ravenctl token --worker")
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
    token_id: str = "",
) -> str:
    """Mint a token (dev CLI, service identities, worker tokens, tests); ``jti`` is ``token_id`` or random."""
    now = int(time.time())
    claims = {
        "sub": subject,
        "permissions": sorted(permissions),
        "iat": now,
        "exp": now + int(ttl_seconds),
        "aud": audience,
        "iss": issuer,
        "jti": token_id or uuid.uuid4().hex,
    }
    if private_key:
        return jwt.encode(claims, private_key, algorithm="RS256")
    if not secret:
        raise ValueError("a secret or a private key is needed to mint tokens")
    return jwt.encode(claims, secret, algorithm="HS256")


def issue_worker_token(
    subject: str,
    *,
    secret: str = "",
    private_key: str = "",
    ttl_seconds: float = WORKER_TOKEN_TTL_SECONDS,
    audience: str = "raven",
    issuer: str = "raven",
) -> str:
    """A worker token: only the ``worker`` permission, a ``jti``, an expiry (issued by operators)."""
    return mint_token(
        subject,
        [Permission.WORKER],
        secret=secret,
        private_key=private_key,
        ttl_seconds=ttl_seconds,
        audience=audience,
        issuer=issuer,
    )


@dataclass(frozen=True)
class WorkerTokenInfo:
    subject: str
    token_id: str
    expires_at: float


def inspect_worker_token(token: str) -> WorkerTokenInfo:
    """What a worker token says about itself, read *without* the key (a worker has none).

    Raises ``ValueError`` with a message for an operator when the text is not a worker-only token: this only
    keeps a wrong credential (a user's, a superadmin's) away from a worker; the services verify the signature.
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise ValueError(f"not a JWT ({exc})") from exc
    permissions = claims.get("permissions")
    if permissions != [Permission.WORKER.value]:
        raise ValueError(
            f"a worker token holds only the {Permission.WORKER.value!r} permission, this one holds "
            f"{permissions!r}: issue one with `ravenctl token --worker`"
        )
    subject, token_id, expires = claims.get("sub"), claims.get("jti"), claims.get("exp")
    if not (isinstance(subject, str) and subject and isinstance(token_id, str) and token_id):
        raise ValueError("a worker token needs 'sub' and 'jti': issue one with `ravenctl token --worker`")
    if not isinstance(expires, int | float):
        raise ValueError("a worker token needs an expiry ('exp')")
    return WorkerTokenInfo(subject=subject, token_id=token_id, expires_at=float(expires))


class ServiceToken:
    """A service's own short-lived token, minted with the signing key and re-minted at half its lifetime.

    Only processes that hold the signing key anyway (the services) use it; workers never do.
    """

    def __init__(
        self,
        subject: str,
        permissions: list[str],
        *,
        secret: str = "",
        private_key: str = "",
        audience: str = "raven",
        issuer: str = "raven",
        ttl_seconds: float = 300.0,
    ) -> None:
        self._subject = subject
        self._permissions = permissions
        self._secret = secret
        self._private_key = private_key
        self._audience = audience
        self._issuer = issuer
        self._ttl = ttl_seconds
        self._token = ""
        self._renew_at = 0.0

    def __call__(self) -> str:
        now = time.monotonic()
        if not self._token or now >= self._renew_at:
            self._token = mint_token(
                self._subject,
                self._permissions,
                secret=self._secret,
                private_key=self._private_key,
                ttl_seconds=self._ttl,
                audience=self._audience,
                issuer=self._issuer,
            )
            self._renew_at = now + self._ttl / 2
        return self._token
