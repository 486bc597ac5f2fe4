"""Worker tokens and service tokens (common/auth.py): ids, revocation, worker-only inspection, re-minting."""

import time

import jwt
import pytest

from common.auth import (
    USER_PERMISSIONS,
    Permission,
    ServiceToken,
    TokenVerifier,
    inspect_worker_token,
    issue_worker_token,
    mint_token,
)
from common.errors import Unauthenticated
from common.settings import Settings

SECRET = "unit-secret"


def test_a_worker_token_holds_only_the_worker_permission_an_id_and_an_expiry() -> None:
    token = issue_worker_token("pool-a", secret=SECRET, ttl_seconds=600)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="raven", issuer="raven")
    assert claims["permissions"] == ["worker"] and claims["sub"] == "pool-a"
    assert len(claims["jti"]) == 32 and 590 <= claims["exp"] - time.time() <= 600
    principal = TokenVerifier(secret=SECRET).verify(token)
    assert principal.has(Permission.WORKER)
    assert not any(principal.has(p) for p in USER_PERMISSIONS)
    info = inspect_worker_token(token)
    assert (info.subject, info.token_id, info.expires_at) == ("pool-a", claims["jti"], claims["exp"])


def test_every_minted_token_has_its_own_id() -> None:
    ids = {
        jwt.decode(mint_token("a", [], secret=SECRET), options={"verify_signature": False})["jti"]
        for _ in "ab"
    }
    assert len(ids) == 2


def test_a_revoked_token_is_unauthenticated_and_others_still_pass() -> None:
    revoked = issue_worker_token("w", secret=SECRET)
    kept = issue_worker_token("w", secret=SECRET)
    revoked_id = inspect_worker_token(revoked).token_id
    settings = Settings(jwt_revoked_ids=f" other , {revoked_id},")
    assert settings.revoked_token_ids() == {"other", revoked_id}
    verifier = TokenVerifier(secret=SECRET, revoked_ids=settings.revoked_token_ids())
    with pytest.raises(Unauthenticated, match=f"token {revoked_id} is revoked"):
        verifier.verify(revoked)
    assert verifier.verify(kept).is_worker


def test_a_worker_token_without_an_id_is_refused() -> None:
    claims = {
        "sub": "w",
        "permissions": ["worker"],
        "exp": int(time.time()) + 60,
        "aud": "raven",
        "iss": "raven",
    }
    with pytest.raises(Unauthenticated, match="invalid worker token: no 'jti'"):
        TokenVerifier(secret=SECRET).verify(jwt.encode(claims, SECRET, algorithm="HS256"))


@pytest.mark.parametrize(
    "permissions",
    [["superadmin"], ["worker", "superadmin"], sorted(USER_PERMISSIONS), [], ["worker", "models.view"]],
)
def test_inspection_refuses_anything_but_a_worker_only_token(permissions: list[str]) -> None:
    with pytest.raises(ValueError, match="only the 'worker' permission"):
        inspect_worker_token(mint_token("x", permissions, secret=SECRET))


def test_inspection_refuses_text_that_is_not_a_jwt() -> None:
    with pytest.raises(ValueError, match="not a JWT"):
        inspect_worker_token("RAVEN_JWT_SECRET=oops")


def test_service_token_is_reused_then_reminted_at_half_its_lifetime(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    token = ServiceToken("service:x", [Permission.VIEW_TRAINING_RUNS], secret=SECRET, ttl_seconds=100)
    first = token()
    now[0] += 49
    assert token() == first
    now[0] += 2
    second = token()
    assert second != first
    assert TokenVerifier(secret=SECRET).verify(second).has(Permission.VIEW_TRAINING_RUNS)
