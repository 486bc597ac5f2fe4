import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from common.auth import Permission, Principal, TokenVerifier, mint_token
from common.errors import PermissionDenied, Unauthenticated

SECRET = "unit-secret"


def verifier() -> TokenVerifier:
    return TokenVerifier(secret=SECRET)


def test_valid_token_gives_principal_with_permissions() -> None:
    tok = mint_token("alice", [Permission.CREATE_TRAINING_RUNS], secret=SECRET)
    found = verifier().verify(tok)
    assert found.subject == "alice"
    assert found.has(Permission.CREATE_TRAINING_RUNS)
    assert not found.has(Permission.PUBLISH_MODELS)


def test_expired_token_is_unauthenticated() -> None:
    tok = mint_token("alice", [], secret=SECRET, ttl_seconds=-10)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier().verify(tok)


def test_bad_signature_is_unauthenticated() -> None:
    tok = mint_token("alice", [], secret="another-secret")
    with pytest.raises(Unauthenticated, match="invalid token"):
        verifier().verify(tok)


def test_alg_none_is_rejected() -> None:
    claims = {
        "sub": "mallory",
        "permissions": ["superadmin"],
        "exp": int(time.time()) + 60,
        "aud": "raven",
        "iss": "raven",
    }
    tok = jwt.encode(claims, key=None, algorithm="none")
    with pytest.raises(Unauthenticated):
        verifier().verify(tok)


def test_missing_token_is_unauthenticated() -> None:
    with pytest.raises(Unauthenticated, match="missing"):
        verifier().verify("")


def test_wrong_audience_is_rejected() -> None:
    tok = mint_token("alice", [], secret=SECRET, audience="other")
    with pytest.raises(Unauthenticated):
        verifier().verify(tok)


def test_missing_claim_is_permission_denied() -> None:
    found = verifier().verify(mint_token("bob", [Permission.VIEW_TRAINING_RUNS], secret=SECRET))
    with pytest.raises(PermissionDenied) as denied:
        found.require(Permission.CREATE_TRAINING_RUNS)
    # The permission's wire name, as a client in any language reads it; never the Python enum's repr.
    assert denied.value.message == "caller 'bob' lacks the 'training_runs.create' permission"


def test_superadmin_bypasses_user_checks_but_is_not_a_worker() -> None:
    admin = Principal("root", frozenset({Permission.SUPERADMIN}))
    assert admin.has(Permission.DELETE_MODELS)
    assert not admin.has(Permission.WORKER)


def test_worker_identity_has_no_user_rights() -> None:
    worker = Principal("worker-1", frozenset({Permission.WORKER, Permission.VIEW_TRAINING_RUNS}))
    assert worker.has(Permission.WORKER)
    assert not worker.has(Permission.VIEW_TRAINING_RUNS)


def test_rs256_round_trip_and_hs256_token_refused_by_rs256_verifier() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    rs = TokenVerifier(public_key=public_pem)
    assert rs.verify(mint_token("carol", ["models.view"], private_key=private_pem)).subject == "carol"
    # Algorithm confusion: an HS256 token signed with the public key as secret must not pass.
    forged = jwt.encode(
        {"sub": "x", "exp": int(time.time()) + 60, "aud": "raven", "iss": "raven"},
        "not-the-key",
        algorithm="HS256",
    )
    with pytest.raises(Unauthenticated):
        rs.verify(forged)


def test_verifier_needs_a_key() -> None:
    with pytest.raises(ValueError, match="RAVEN_JWT_SECRET"):
        TokenVerifier()


def test_cached_token_still_expires() -> None:
    v = verifier()
    tok = mint_token("alice", [], secret=SECRET, ttl_seconds=1)
    assert v.verify(tok).subject == "alice"
    assert v.verify(tok).subject == "alice"  # served from the cache
    time.sleep(1.6)
    with pytest.raises(Unauthenticated, match="expired"):
        v.verify(tok)


def test_cache_does_not_accept_a_token_it_never_verified() -> None:
    v = verifier()
    v.verify(mint_token("alice", [], secret=SECRET))
    with pytest.raises(Unauthenticated):
        v.verify(mint_token("alice", [], secret="forged"))
