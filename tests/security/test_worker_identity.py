"""A worker's credential opens the worker RPCs and nothing else, and cannot be turned into another token.

A worker holds a pre-issued worker token (``ravenctl token --worker``), never the signing key. Here an
attacker owns such a token (a compromised worker) and tries to use it as a user, a superadmin, or as material
to mint one: every user RPC of both services answers PERMISSION_DENIED to the token itself (the
EvaluationService's included: a worker reports evaluations over NATS and calls none of its RPCs), and every
token derived from it without the key is UNAUTHENTICATED. Nothing is created on the way.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import grpc
import jwt
import pytest

from common.auth import Permission, issue_worker_token
from common.proto.raven.v1 import evaluations_pb2 as ev
from common.proto.raven.v1 import trained_model_pb2 as tm
from common.proto.raven.v1 import training_run_pb2 as tr
from tests.helpers import JWT_SECRET, bearer
from tests.security.matrix import EV, ROWS, TM, TR, USER_METHODS, World, assert_no_leak, call
from tests.security.stack import Stack

DONE_WHEN = (TR + "CreateTrainingRun", TM + "PublishTrainedModel", EV + "CreateEvaluation")


@pytest.fixture(scope="module")
def worker_token() -> str:
    return issue_worker_token("compromised-worker", secret=JWT_SECRET, ttl_seconds=600)


@pytest.fixture(scope="module")
def world(stack: Stack) -> World:
    return World(stack)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _payload(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def _escalated(token: str) -> dict[str, object]:
    return {**_payload(token), "sub": "alice", "permissions": sorted([*Permission])}


FORGERIES: dict[str, Callable[[str], str]] = {
    # The worker token's own signature over a payload that now claims everything.
    "payload swapped, signature kept": lambda t: ".".join(
        [t.split(".")[0], _b64(_escalated(t)), t.split(".")[2]]
    ),
    # The only secret-looking thing a worker holds is its token: sign with that.
    "signed with the worker token as key": lambda t: jwt.encode(_escalated(t), t, algorithm="HS256"),
    "signed with the token's signature as key": lambda t: jwt.encode(
        _escalated(t), t.split(".")[2], algorithm="HS256"
    ),
    'alg "none"': lambda t: jwt.encode(_escalated(t), None, algorithm="none"),
    "lifetime extended": lambda t: ".".join(
        [t.split(".")[0], _b64({**_payload(t), "exp": int(time.time()) + 10**8}), t.split(".")[2]]
    ),
}


@pytest.mark.parametrize("method_path", USER_METHODS)
def test_a_worker_token_is_denied_every_user_rpc(
    stack: Stack, world: World, worker_token: str, method_path: str
) -> None:
    row = ROWS[method_path]
    target = world.existing(row.resource) if row.resource else ""
    outcome = call(stack, method_path, row.request(stack, target), bearer(worker_token))
    assert outcome.code == grpc.StatusCode.PERMISSION_DENIED, outcome
    assert "worker" in outcome.details or "lacks" in outcome.details, outcome
    assert_no_leak(outcome)


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
@pytest.mark.parametrize("method_path", DONE_WHEN)
def test_no_token_derived_from_a_worker_token_gets_through(
    stack: Stack, world: World, worker_token: str, method_path: str, forgery: str
) -> None:
    row = ROWS[method_path]
    target = world.existing(row.resource) if row.resource else ""
    forged = FORGERIES[forgery](worker_token)
    outcome = call(stack, method_path, row.request(stack, target), bearer(forged))
    assert outcome.code == grpc.StatusCode.UNAUTHENTICATED, outcome
    assert_no_leak(outcome)


def _evaluations(stack: Stack) -> set[str]:
    found = stack.evaluations.ListEvaluations(
        ev.ListEvaluationsRequest(page_size=500), metadata=stack.who.admin, timeout=30
    )
    return {e.name for e in found.evaluations}


def test_the_denied_calls_changed_nothing(stack: Stack, world: World, worker_token: str) -> None:
    before = stack.runs.ListTrainingRuns(tr.ListTrainingRunsRequest(page_size=500), metadata=stack.who.admin)
    evaluations_before = _evaluations(stack)
    assert world.evaluation in evaluations_before  # control: the listing sees alice's evaluation
    for method_path in DONE_WHEN:
        row = ROWS[method_path]
        target = world.existing(row.resource) if row.resource else ""
        for metadata in [bearer(worker_token), *(bearer(f(worker_token)) for f in FORGERIES.values())]:
            assert not call(stack, method_path, row.request(stack, target), metadata).ok
    after = stack.runs.ListTrainingRuns(tr.ListTrainingRunsRequest(page_size=500), metadata=stack.who.admin)
    assert {r.name for r in after.training_runs} == {r.name for r in before.training_runs}
    assert _evaluations(stack) == evaluations_before
    model = stack.models.GetTrainedModel(
        tm.GetTrainedModelRequest(name=world.model.name), metadata=stack.who.alice
    )
    assert model.published is False


def test_the_worker_token_itself_still_works_on_the_worker_rpcs(stack: Stack, worker_token: str) -> None:
    """Control: the token is valid, so the denials above are authorization, not a broken credential."""
    run = stack.create_run(stack.who.alice, "claimed by the worker token")
    claimed = stack.runs.ClaimTrainingRun(
        tr.ClaimTrainingRunRequest(name=run.name, worker_id="w-identity", job_attempt=1),
        metadata=bearer(worker_token),
        timeout=30,
    )
    assert claimed.attempt == 1
