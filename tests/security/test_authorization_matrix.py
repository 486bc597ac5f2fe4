"""Every RPC of both services x every kind of caller → the right status, no leaks.

The RPC list comes from the service descriptors: an RPC added to a .proto without a row in ``ROWS`` fails
``test_every_rpc_has_a_row`` (and each of its matrix cases). Calls go over real channels to the real servers.

Callers (columns):
- broken credentials (no token, expired, wrong signature, alg "none", wrong audience/issuer, missing
  ``sub``/``exp``, not a bearer scheme, garbage) → UNAUTHENTICATED, even though the token claims superadmin +
  worker;
- a valid token without a ``permissions`` claim → PERMISSION_DENIED;
- the worker identity on user RPCs, a user holding every user claim on worker RPCs → PERMISSION_DENIED;
- superadmin → passes every user RPC; on worker RPCs it is PERMISSION_DENIED by design (``Principal.has``: the
  superadmin claim does not stand in for the worker service identity);
- the owner → passes; another owner (no view-all claim) → NOT_FOUND on the owner's resource, with a message
  and status details identical, id substituted, to those for an id that never existed.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc
import pytest

from common.auth import Permission
from common.proto.raven.v1 import datasets_pb2 as ds
from common.proto.raven.v1 import evaluations_pb2 as ev
from common.proto.raven.v1 import trained_model_pb2 as tm
from common.proto.raven.v1 import training_run_pb2 as tr
from tests.helpers import bearer, token
from tests.security.matrix import (
    DS,
    EV,
    METHODS,
    ROWS,
    SECRET_DATASET_NAME,
    SECRET_MODEL_NAME,
    SECRET_RUN_NAME,
    TM,
    TR,
    UNAUTHENTICATED_CALLERS,
    USER_METHODS,
    WORKER_ONLY,
    World,
    _claims,
    _hs,
    _import_request,
    _run_spec,
    assert_no_leak,
    call,
    no_permissions_claim,
    passed,
)
from tests.security.rpc import OPERATOR_METHODS, all_methods
from tests.security.stack import Stack


@pytest.fixture(scope="module")
def world(stack: Stack) -> World:
    return World(stack)


# ---- the matrix --------------------------------------------------------------------------------------------
def test_every_rpc_has_a_row() -> None:
    assert METHODS, "no RPCs found in the descriptors"
    missing = sorted(set(METHODS) - set(ROWS))
    assert not missing, f"RPCs without an authorization-matrix row: {missing}"
    assert not set(ROWS) - set(METHODS), "rows for RPCs that no longer exist"
    assert {m.server_streaming for m in all_methods()} == {True, False}, "streaming RPCs are included"


@pytest.mark.parametrize("caller", sorted(UNAUTHENTICATED_CALLERS))
@pytest.mark.parametrize("method_path", sorted(METHODS))
def test_broken_credentials_are_unauthenticated(
    stack: Stack, world: World, method_path: str, caller: str
) -> None:
    row = ROWS[method_path]
    target = world.existing(row.resource) if row.resource else ""
    outcome = call(stack, method_path, row.request(stack, target), UNAUTHENTICATED_CALLERS[caller]())
    assert outcome.code == grpc.StatusCode.UNAUTHENTICATED, outcome
    assert_no_leak(outcome)


@pytest.mark.parametrize("method_path", sorted(METHODS))
def test_token_without_permissions_claim_is_denied(stack: Stack, world: World, method_path: str) -> None:
    row = ROWS[method_path]
    target = world.existing(row.resource) if row.resource else ""
    outcome = call(stack, method_path, row.request(stack, target), no_permissions_claim())
    assert outcome.code == grpc.StatusCode.PERMISSION_DENIED, outcome
    assert_no_leak(outcome)


@pytest.mark.parametrize("method_path", USER_METHODS)
def test_worker_identity_cannot_call_user_rpcs(stack: Stack, world: World, method_path: str) -> None:
    row = ROWS[method_path]
    target = world.existing(row.resource) if row.resource else ""
    outcome = call(stack, method_path, row.request(stack, target), stack.who.worker)
    assert outcome.code == grpc.StatusCode.PERMISSION_DENIED, outcome
    assert_no_leak(outcome)


@pytest.mark.parametrize("caller", ["user with every user claim", "owner", "superadmin"])
@pytest.mark.parametrize("method_path", WORKER_ONLY)
def test_only_the_worker_identity_calls_worker_rpcs(
    stack: Stack, world: World, method_path: str, caller: str
) -> None:
    row = ROWS[method_path]
    metadata = {
        "user with every user claim": stack.who.user,
        "owner": stack.who.alice,
        "superadmin": stack.who.admin,
    }[caller]
    target = world.existing(row.resource) if row.resource else ""
    outcome = call(stack, method_path, row.request(stack, target), metadata)
    assert outcome.code == grpc.StatusCode.PERMISSION_DENIED, outcome
    assert_no_leak(outcome)


@pytest.mark.parametrize("method_path", WORKER_ONLY)
def test_worker_identity_passes_worker_rpcs(stack: Stack, world: World, method_path: str) -> None:
    row = ROWS[method_path]
    outcome = call(stack, method_path, row.request(stack, world.fresh(row.resource)), stack.who.worker)
    assert outcome.ok, outcome
    assert_no_leak(outcome)


@pytest.mark.parametrize("caller", ["owner", "superadmin"])
@pytest.mark.parametrize("method_path", USER_METHODS)
def test_owner_and_superadmin_pass_user_rpcs(
    stack: Stack, world: World, method_path: str, caller: str
) -> None:
    row = ROWS[method_path]
    metadata = stack.who.alice if caller == "owner" else stack.who.admin
    outcome = call(stack, method_path, row.request(stack, world.fresh(row.resource)), metadata)
    if caller == "owner" and method_path in OPERATOR_METHODS:
        assert outcome.code == grpc.StatusCode.PERMISSION_DENIED, outcome
        assert_no_leak(outcome)
        return
    assert passed(outcome), outcome


@pytest.mark.parametrize("method_path", sorted(OPERATOR_METHODS))
def test_operator_rpcs_pass_with_the_view_all_claim(stack: Stack, world: World, method_path: str) -> None:
    row = ROWS[method_path]
    outcome = call(stack, method_path, row.request(stack, ""), stack.who.user)  # every user claim
    assert passed(outcome), outcome


@pytest.mark.parametrize("method_path", [p for p in USER_METHODS if ROWS[p].resource])
def test_other_owners_resource_is_indistinguishable_from_a_missing_one(
    stack: Stack, world: World, method_path: str
) -> None:
    row = ROWS[method_path]
    kind = str(row.resource)
    existing, missing = world.existing(kind), World.missing(kind)
    theirs = call(stack, method_path, row.request(stack, existing), stack.who.bob)
    absent = call(stack, method_path, row.request(stack, missing), stack.who.bob)
    assert theirs.code == grpc.StatusCode.NOT_FOUND, theirs
    assert absent.code == grpc.StatusCode.NOT_FOUND, absent
    assert theirs.details.replace(existing, "<name>") == absent.details.replace(missing, "<name>")
    assert theirs.status_details.replace(existing.encode(), b"<name>") == absent.status_details.replace(
        missing.encode(), b"<name>"
    )
    assert_no_leak(theirs, "alice")
    # Alice's resource is untouched by bob's attempt.
    getter, request = {
        "model": (TM + "GetTrainedModel", tm.GetTrainedModelRequest),
        "evaluable_model": (TM + "GetTrainedModel", tm.GetTrainedModelRequest),
        "evaluation": (EV + "GetEvaluation", ev.GetEvaluationRequest),
        "dataset": (DS + "GetDataset", ds.GetDatasetRequest),
        "version": (DS + "GetDatasetVersion", ds.GetDatasetVersionRequest),
    }.get(kind, (TR + "GetTrainingRun", tr.GetTrainingRunRequest))
    still = call(stack, getter, request(name=existing), stack.who.alice)
    assert still.ok, still
    found = still.responses[0]
    if kind == "evaluation":  # not cancelled by bob, still of alice's model
        assert found.state == ev.EVALUATION_STATE_PENDING and found.owner == "alice", found
        assert found.trained_model == world.evaluable_model.name
        return
    label = found.description if kind == "version" else found.display_name
    assert label in (SECRET_RUN_NAME, SECRET_MODEL_NAME, SECRET_DATASET_NAME)


# ---- "another owner" for the RPCs that take no resource name -----------------------------------------------
def test_create_cannot_use_or_probe_another_owners_private_base_model(stack: Stack, world: World) -> None:
    method = TR + "CreateTrainingRun"
    missing = World.missing("model")
    theirs = call(
        stack,
        method,
        tr.CreateTrainingRunRequest(
            training_run=_run_spec(stack, base_model=world.model.name, model_template="")
        ),
        stack.who.bob,
    )
    absent = call(
        stack,
        method,
        tr.CreateTrainingRunRequest(training_run=_run_spec(stack, base_model=missing, model_template="")),
        stack.who.bob,
    )
    assert theirs.code == absent.code == grpc.StatusCode.INVALID_ARGUMENT, (theirs, absent)
    assert theirs.details.replace(world.model.name, "<m>") == absent.details.replace(missing, "<m>")
    assert theirs.status_details.replace(world.model.name.encode(), b"<m>") == absent.status_details.replace(
        missing.encode(), b"<m>"
    )
    assert_no_leak(theirs, "alice")


def test_request_ids_are_scoped_to_their_owner(stack: Stack, world: World) -> None:
    request_id = "shared-" + uuid.uuid4().hex
    alice_run = stack.runs.CreateTrainingRun(
        tr.CreateTrainingRunRequest(training_run=_run_spec(stack, SECRET_RUN_NAME), request_id=request_id),
        metadata=stack.who.alice,
        timeout=60,
    )
    bob_run = stack.runs.CreateTrainingRun(
        tr.CreateTrainingRunRequest(training_run=_run_spec(stack, "bob's"), request_id=request_id),
        metadata=stack.who.bob,
        timeout=60,
    )
    assert bob_run.name != alice_run.name and bob_run.owner == "bob" and bob_run.display_name == "bob's"
    alice_model = stack.models.ImportTrainedModel(
        _import_request(stack, "", request_id=request_id), metadata=stack.who.alice, timeout=60
    )
    bob_model = stack.models.ImportTrainedModel(
        _import_request(stack, "", request_id=request_id), metadata=stack.who.bob, timeout=60
    )
    assert bob_model.name != alice_model.name and bob_model.owner == "bob"


def test_lists_show_only_the_callers_runs_and_visible_models(stack: Stack, world: World) -> None:
    denied = call(stack, TR + "ListTrainingRuns", tr.ListTrainingRunsRequest(owner="alice"), stack.who.bob)
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED, denied
    assert_no_leak(denied, SECRET_RUN_NAME)
    runs = call(stack, TR + "ListTrainingRuns", tr.ListTrainingRunsRequest(page_size=500), stack.who.bob)
    assert runs.ok and all(r.owner == "bob" for r in runs.responses[0].training_runs), runs
    for request in (tm.ListTrainedModelsRequest(page_size=500), tm.ListTrainedModelsRequest(owner="alice")):
        models = call(stack, TM + "ListTrainedModels", request, stack.who.bob)
        assert models.ok, models
        listed = models.responses[0].trained_models
        assert all(m.owner == "bob" or m.published for m in listed), listed
        assert world.model.name not in {m.name for m in listed}
    # Control: the owner and the superadmin do see them (the filters above are what hides them).
    mine = stack.runs.ListTrainingRuns(tr.ListTrainingRunsRequest(page_size=500), metadata=stack.who.alice)
    assert world.run.name in {r.name for r in mine.training_runs}
    everything = stack.models.ListTrainedModels(
        tm.ListTrainedModelsRequest(page_size=500), metadata=stack.who.admin
    )
    assert world.model.name in {m.name for m in everything.trained_models}


def test_watch_all_runs_hides_other_owners_changes(stack: Stack, world: World) -> None:
    denied = call(stack, TR + "WatchTrainingRuns", tr.WatchTrainingRunsRequest(owner="alice"), stack.who.bob)
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED, denied
    method = stack.tr_channel.unary_stream(
        TR + "WatchTrainingRuns",
        tr.WatchTrainingRunsRequest.SerializeToString,
        tr.WatchTrainingRunsResponse.FromString,
    )
    bobs = method(tr.WatchTrainingRunsRequest(), metadata=stack.who.bob, timeout=8)
    admins = method(tr.WatchTrainingRunsRequest(owner="alice"), metadata=stack.who.admin, timeout=8)
    time.sleep(1.0)  # both subscriptions are live before the change
    run = world._cancelled(SECRET_RUN_NAME)
    seen_by_admin = next(item for item in admins if item.training_run.name == run.name)
    assert seen_by_admin.training_run.owner == "alice"
    admins.cancel()
    seen_by_bob: list[Any] = []
    with pytest.raises(grpc.RpcError) as stopped:
        for item in bobs:
            seen_by_bob.append(item)
    assert stopped.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert all(item.training_run.owner != "alice" for item in seen_by_bob), seen_by_bob


def test_the_test_tokens_are_otherwise_valid(stack: Stack) -> None:
    """Control for the broken-credential cases: the same claims, correctly signed, get through."""
    good = bearer(_hs(_claims(permissions=[Permission.SUPERADMIN])))
    assert stack.runs.ListTrainingRuns(tr.ListTrainingRunsRequest(), metadata=good, timeout=30) is not None
    assert bearer(token("x"))  # the helper mints with the same secret
