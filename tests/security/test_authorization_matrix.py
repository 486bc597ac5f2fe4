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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
import pytest
from google.protobuf import field_mask_pb2, message

from common.auth import Permission
from common.proto.raven.v1 import trained_model_pb2 as tm
from common.proto.raven.v1 import training_run_pb2 as tr
from common.proto.raven.v1 import types_pb2
from tests.helpers import JWT_SECRET, bearer, token
from tests.security.rpc import OPERATOR_METHODS, WORKER_METHODS, Outcome, all_methods, invoke, path
from tests.security.stack import JSON_CONFIG, Stack, checkpoint_bytes

TR = "/raven.v1.TrainingRunService/"
TM = "/raven.v1.TrainedModelService/"
SECRET_RUN_NAME = "alice-private-run-" + uuid.uuid4().hex[:6]
SECRET_MODEL_NAME = "alice-private-model-" + uuid.uuid4().hex[:6]
LEAK_MARKERS = ("Traceback", 'File "', "sqlalchemy", "Error(", "site-packages")


# ---- rows: one per RPC -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    request: Callable[[Stack, str], message.Message]  # request aimed at the resource name given
    resource: str | None  # kind of resource the RPC targets: run, terminal_run, pending_run, model, or None


def _run_spec(stack: Stack, display_name: str = "matrix run", **extra: Any) -> tr.TrainingRun:
    values: dict[str, Any] = {"dataset": stack.dataset, "model_template": "rtmdet_tiny", **extra}
    return tr.TrainingRun(
        display_name=display_name, hyperparameters=types_pb2.Hyperparameters(epochs=1), **values
    )


def _import_request(stack: Stack, name: str, request_id: str = "") -> tm.ImportTrainedModelRequest:
    prefix = uuid.uuid4().hex[:8]
    stack.store.put_bytes(f"imports/{prefix}/config.json", __import__("json").dumps(JSON_CONFIG).encode())
    stack.store.put_bytes(f"imports/{prefix}/model.pth", checkpoint_bytes(2))
    return tm.ImportTrainedModelRequest(
        display_name="matrix import",
        config_uri=f"imports/{prefix}/config.json",
        checkpoint_uri=f"imports/{prefix}/model.pth",
        class_names=["dump", "tyre"],
        model_template="rtmdet_tiny",
        request_id=request_id,
    )


def _mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


ROWS: dict[str, Row] = {
    TR + "CreateTrainingRun": Row(lambda s, n: tr.CreateTrainingRunRequest(training_run=_run_spec(s)), None),
    TR + "GetTrainingRun": Row(lambda s, n: tr.GetTrainingRunRequest(name=n), "run"),
    TR + "ListTrainingRuns": Row(lambda s, n: tr.ListTrainingRunsRequest(), None),
    TR + "UpdateTrainingRun": Row(
        lambda s, n: tr.UpdateTrainingRunRequest(
            training_run=tr.TrainingRun(name=n, display_name="renamed"), update_mask=_mask("display_name")
        ),
        "run",
    ),
    TR + "DeleteTrainingRun": Row(lambda s, n: tr.DeleteTrainingRunRequest(name=n), "terminal_run"),
    TR + "CancelTrainingRun": Row(lambda s, n: tr.CancelTrainingRunRequest(name=n, reason="matrix"), "run"),
    TR + "WatchTrainingRun": Row(lambda s, n: tr.WatchTrainingRunRequest(name=n), "terminal_run"),
    TR + "WatchTrainingRuns": Row(lambda s, n: tr.WatchTrainingRunsRequest(), None),
    TR + "GetTrainingRunLogs": Row(lambda s, n: tr.GetTrainingRunLogsRequest(name=n), "run"),
    TR + "ClaimTrainingRun": Row(
        lambda s, n: tr.ClaimTrainingRunRequest(name=n, worker_id="w-matrix", job_attempt=1), "pending_run"
    ),
    TR + "HeartbeatTrainingRun": Row(
        lambda s, n: tr.HeartbeatTrainingRunRequest(name=n, worker_id="w-matrix", attempt=1), "claimed_run"
    ),
    TR + "ReleaseTrainingRun": Row(
        lambda s, n: tr.ReleaseTrainingRunRequest(name=n, worker_id="w-matrix", attempt=1), "claimed_run"
    ),
    TR + "HeartbeatWorker": Row(
        lambda s, n: tr.HeartbeatWorkerRequest(
            worker_id="w-matrix", worker=tr.WorkerInfo(device_kind="cpu", slots=1)
        ),
        None,
    ),
    TR + "ListModelTemplates": Row(lambda s, n: tr.ListModelTemplatesRequest(), None),
    TR + "GetModelTemplate": Row(
        lambda s, n: tr.GetModelTemplateRequest(name="modelTemplates/rtmdet_tiny"), None
    ),
    TR + "ListWorkers": Row(lambda s, n: tr.ListWorkersRequest(), None),
    TM + "GetTrainedModel": Row(lambda s, n: tm.GetTrainedModelRequest(name=n), "model"),
    TM + "ListTrainedModels": Row(lambda s, n: tm.ListTrainedModelsRequest(), None),
    TM + "UpdateTrainedModel": Row(
        lambda s, n: tm.UpdateTrainedModelRequest(
            trained_model=tm.TrainedModel(name=n, description="edited"), update_mask=_mask("description")
        ),
        "model",
    ),
    TM + "DeleteTrainedModel": Row(lambda s, n: tm.DeleteTrainedModelRequest(name=n), "model"),
    TM + "PublishTrainedModel": Row(lambda s, n: tm.PublishTrainedModelRequest(name=n), "model"),
    TM + "UnpublishTrainedModel": Row(lambda s, n: tm.UnpublishTrainedModelRequest(name=n), "model"),
    TM + "GetModelLineage": Row(lambda s, n: tm.GetModelLineageRequest(name=n), "model"),
    TM + "ImportTrainedModel": Row(lambda s, n: _import_request(s, n), None),
    TM + "DownloadModelArtifact": Row(
        lambda s, n: tm.DownloadModelArtifactRequest(name=n, kind=types_pb2.CHECKPOINT), "model"
    ),
    TM + "GetTrainedModelStatistics": Row(lambda s, n: tm.GetTrainedModelStatisticsRequest(name=n), "model"),
}
METHODS = {path(m): m for m in all_methods()}


# ---- tokens ------------------------------------------------------------------------------------------------
def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "alice",
        # Claims everything: a broken credential must be refused however powerful it says it is.
        "permissions": sorted([*Permission]),
        "iat": now,
        "exp": now + 600,
        "aud": "raven",
        "iss": "raven",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _hs(claims: dict[str, Any], secret: str = JWT_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


UNAUTHENTICATED_CALLERS: dict[str, Callable[[], Any]] = {
    "no token": lambda: (),
    "empty bearer": lambda: (("authorization", "Bearer "),),
    "not a bearer scheme": lambda: (("authorization", f"Basic {_hs(_claims())}"),),
    "garbage": lambda: bearer("not.a.jwt"),
    "expired": lambda: bearer(_hs(_claims(exp=int(time.time()) - 30))),
    "wrong signature": lambda: bearer(_hs(_claims(), secret="another-secret-" + uuid.uuid4().hex)),
    'alg "none"': lambda: bearer(jwt.encode(_claims(), None, algorithm="none")),
    "wrong audience": lambda: bearer(_hs(_claims(aud="someone-else"))),
    "wrong issuer": lambda: bearer(_hs(_claims(iss="someone-else"))),
    "missing sub": lambda: bearer(_hs(_claims(sub=None))),
    "missing exp": lambda: bearer(_hs(_claims(exp=None))),
    "sub not a string": lambda: bearer(_hs(_claims(sub=""))),
    "permissions not a list": lambda: bearer(_hs(_claims(permissions="superadmin"))),
}


def no_permissions_claim() -> Any:
    return bearer(_hs(_claims(permissions=None)))


# ---- resources ---------------------------------------------------------------------------------------------
class World:
    """Alice's resources (secret names), plus fresh ones for callers that change what they touch."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.run = stack.create_run(stack.who.alice, SECRET_RUN_NAME)
        self.terminal_run = self._cancelled(SECRET_RUN_NAME)
        self.model = stack.import_model(stack.who.alice, SECRET_MODEL_NAME)

    def _cancelled(self, display_name: str) -> Any:
        run = self.stack.create_run(self.stack.who.alice, display_name)
        return self.stack.runs.CancelTrainingRun(
            tr.CancelTrainingRunRequest(name=run.name), metadata=self.stack.who.alice, timeout=30
        )

    def existing(self, kind: str) -> str:
        return {
            "run": self.run.name,
            "pending_run": self.run.name,
            "claimed_run": self.run.name,
            "terminal_run": self.terminal_run.name,
            "model": self.model.name,
        }[kind]

    def fresh(self, kind: str | None) -> str:
        if kind in ("run", "pending_run"):
            return str(self.stack.create_run(self.stack.who.alice, "fresh run").name)
        if kind == "terminal_run":
            return str(self._cancelled("fresh run").name)
        if kind == "claimed_run":
            name = str(self.stack.create_run(self.stack.who.alice, "fresh run").name)
            self.stack.runs.ClaimTrainingRun(
                tr.ClaimTrainingRunRequest(name=name, worker_id="w-matrix", job_attempt=1),
                metadata=self.stack.who.worker,
                timeout=30,
            )
            return name
        if kind == "model":
            return str(self.stack.import_model(self.stack.who.alice, "fresh model").name)
        return ""

    @staticmethod
    def missing(kind: str) -> str:
        if kind == "model":
            return f"trainedModels/{uuid.uuid4()}"
        return f"trainingRuns/{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def world(stack: Stack) -> World:
    return World(stack)


def call(stack: Stack, method_path: str, request: message.Message, metadata: Any) -> Outcome:
    channel = stack.tr_channel if method_path.startswith(TR) else stack.tm_channel
    return invoke(channel, METHODS[method_path], request, metadata, timeout=60, stream_timeout=1.5)


def assert_no_leak(outcome: Outcome, *extra: str) -> None:
    for marker in (*LEAK_MARKERS, SECRET_RUN_NAME, SECRET_MODEL_NAME, *extra):
        assert marker not in outcome.details, f"{marker!r} leaked in {outcome}"
        assert marker.encode() not in outcome.status_details, f"{marker!r} leaked in status details"


def passed(outcome: Outcome) -> bool:
    """Authorized: OK, or a stream still open at the deadline (WatchTrainingRuns waits for changes)."""
    return outcome.ok or (outcome.stream_open and outcome.code == grpc.StatusCode.DEADLINE_EXCEEDED)


USER_METHODS = sorted(p for p in METHODS if p not in WORKER_METHODS)
WORKER_ONLY = sorted(p for p in METHODS if p in WORKER_METHODS)


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
    still = call(
        stack,
        TM + "GetTrainedModel" if kind == "model" else TR + "GetTrainingRun",
        (tm.GetTrainedModelRequest if kind == "model" else tr.GetTrainingRunRequest)(name=existing),
        stack.who.alice,
    )
    assert still.ok, still
    assert still.responses[0].display_name in (SECRET_RUN_NAME, SECRET_MODEL_NAME)


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
