"""Property-based fuzzing of every RPC of both services over real channels.

For each RPC (from the service descriptors) hypothesis generates arbitrary requests (see ``strategies``), half
of them valid seeds with random fields merged in, and sends each as superadmin, as a user holding every user
claim, as an owner without view-all claims, or as the worker identity. Properties:

- the answer is never INTERNAL or UNKNOWN (nor UNAVAILABLE: the server is up; nor a unary DEADLINE_EXCEEDED),
  and no error message carries a traceback;
- both servers still answer health afterwards;
- stored state stays consistent: every run and model listed by the superadmin is well formed, every stored
  run's state is a valid enum value, and a run created before the fuzz (by an owner the fuzz never
  impersonates) is unchanged unless an answered-OK request legitimately targeted it.

``RAVEN_FUZZ_EXAMPLES`` sets the examples per RPC (default 30; ``make reliability`` runs ≥ 10,000 in total).
``RAVEN_FUZZ_REPORT`` names a JSON file to write per-RPC counts and status codes to.
"""

from __future__ import annotations

import collections
import json
import os
import re
import sqlite3
import time
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.mmdet_config import TEMPLATES
from common.proto.raven.v1 import trained_model_pb2 as tm
from common.proto.raven.v1 import training_run_pb2 as tr
from common.proto.raven.v1 import types_pb2
from tests.security import strategies
from tests.security.rpc import all_methods, invoke, on_trained_model_server, path
from tests.security.stack import CLASSES, Stack

EXAMPLES = int(os.environ.get("RAVEN_FUZZ_EXAMPLES", "30"))
# RESOURCE_EXHAUSTED: no RPC has quotas; it is what a client sees when the error status overflows the
# trailers.
FORBIDDEN = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
READ_ONLY = {
    "Get",
    "List",
    "Watch",
    "GetTrainingRunLogs",
    "GetModelLineage",
    "Download",
    "GetTrainedModelStatistics",
}
METHODS = {path(m): m for m in all_methods()}
VALID_STATES = {v.number for v in types_pb2.RunState.DESCRIPTOR.values} - {0}
RUN_NAME = re.compile(r"^trainingRuns/[A-Za-z0-9_-]{1,36}$")
MODEL_NAME = re.compile(r"^trainedModels/[A-Za-z0-9_-]{1,64}$")

COUNTS: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
TARGETED: list[tuple[str, str]] = []  # (method, identity) of OK mutations aimed at the protected run
STARTED = time.monotonic()


class Fuzz:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        who = stack.who
        # Created before the fuzz by carol, whom the fuzz never impersonates.
        self.protected = stack.create_run(who.carol, "protected run")
        self.protected_before = self.get_run(self.protected.name)
        # Never named by the fuzz (not in any pool): must come out byte-for-byte unchanged.
        self.bystander = stack.create_run(who.carol, "bystander run")
        self.bystander_before = self.get_run(self.bystander.name)
        self.own_run = stack.create_run(who.alice, "alice run")
        self.model = stack.import_model(who.alice, "alice model")
        self.published = stack.import_model(who.alice, "alice published", publish=True)
        self.carol_model = stack.import_model(who.carol, "carol model")
        run_names = [self.protected.name, self.own_run.name]
        model_names = [self.model.name, self.published.name, self.carol_model.name]
        keys = [a.uri for a in self.published.artifacts] + [
            self.published.checkpoint.uri,
            "imports/x/config.json",
        ]
        field_paths = sorted(
            {f.name for f in tr.TrainingRun.DESCRIPTOR.fields}
            | {f.name for f in tm.TrainedModel.DESCRIPTOR.fields}
        )
        self.pools = strategies.Pools(
            run_names=run_names,
            model_names=model_names,
            datasets=[stack.dataset, "waste", "waste/v1/"],
            artifact_keys=keys,
            owners=["alice", "dave", "root", "carol", "worker-1"],
            templates=sorted(TEMPLATES),
            classes=CLASSES,
            field_paths=field_paths,
        )
        self.identities = {
            "superadmin": who.admin,
            "user": who.user,
            "owner": who.alice,
            "worker": who.worker,
        }
        self.seeds = self._seeds()
        self._strategies: dict[str, st.SearchStrategy[message.Message]] = {}

    def get_run(self, name: str) -> tr.TrainingRun:
        return self.stack.runs.GetTrainingRun(
            tr.GetTrainingRunRequest(name=name), metadata=self.stack.who.admin
        )

    def _seeds(self) -> dict[str, list[message.Message]]:
        run, model = self.own_run.name, self.model.name
        spec = tr.TrainingRun(
            display_name="seed",
            dataset=self.stack.dataset,
            model_template="rtmdet_tiny",
            hyperparameters=types_pb2.Hyperparameters(epochs=1),
        )
        mask = field_mask_pb2.FieldMask
        seeds: dict[str, Any] = {
            "CreateTrainingRun": [tr.CreateTrainingRunRequest(training_run=spec)],
            "UpdateTrainingRun": [
                tr.UpdateTrainingRunRequest(
                    training_run=tr.TrainingRun(name=run, display_name="x"),
                    update_mask=mask(paths=["display_name"]),
                )
            ],
            "ClaimTrainingRun": [tr.ClaimTrainingRunRequest(name=run, worker_id="w", job_attempt=1)],
            "HeartbeatTrainingRun": [tr.HeartbeatTrainingRunRequest(name=run, worker_id="w", attempt=1)],
            "ReleaseTrainingRun": [tr.ReleaseTrainingRunRequest(name=run, worker_id="w", attempt=1)],
            "HeartbeatWorker": [
                tr.HeartbeatWorkerRequest(
                    worker_id="w",
                    worker=tr.WorkerInfo(device_kind="cuda", gpu_model="H100", gpu_count=1, slots=1),
                )
            ],
            "GetModelTemplate": [
                tr.GetModelTemplateRequest(name=f"modelTemplates/{t}") for t in sorted(TEMPLATES)
            ],
            "UpdateTrainedModel": [
                tm.UpdateTrainedModelRequest(
                    trained_model=tm.TrainedModel(name=model, description="x"),
                    update_mask=mask(paths=["description"]),
                )
            ],
            "ImportTrainedModel": [
                tm.ImportTrainedModelRequest(
                    display_name="imp",
                    config_uri="imports/x/config.json",
                    checkpoint_uri="imports/x/model.pth",
                    class_names=["dump", "tyre"],
                )
            ],
            "DownloadModelArtifact": [tm.DownloadModelArtifactRequest(name=self.published.name)],
        }
        return seeds

    def strategy(self, method_path: str) -> st.SearchStrategy[message.Message]:
        if method_path not in self._strategies:
            method = METHODS[method_path]
            self._strategies[method_path] = strategies.requests(
                method.input_type, self.pools, self.seeds.get(method.name, [])
            )
        return self._strategies[method_path]


@pytest.fixture(scope="module")
def fuzz(stack: Stack) -> Fuzz:
    return Fuzz(stack)


def _targets(request: message.Message) -> set[str]:
    found = {getattr(request, "name", "")}
    for nested in ("training_run", "trained_model"):
        inner = getattr(request, nested, None)
        if isinstance(inner, message.Message):
            found.add(getattr(inner, "name", ""))
    return found


@pytest.mark.parametrize("method_path", sorted(METHODS))
def test_fuzz_rpc(fuzz: Fuzz, method_path: str) -> None:
    method = METHODS[method_path]
    # DatasetService is served by the training_run server, EvaluationService by the trained_model server
    channel = fuzz.stack.tm_channel if on_trained_model_server(method_path) else fuzz.stack.tr_channel
    counts = COUNTS[method_path]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(request=fuzz.strategy(method_path), identity=st.sampled_from(sorted(fuzz.identities)))
    def check(request: message.Message, identity: str) -> None:
        outcome = invoke(channel, method, request, fuzz.identities[identity], timeout=60, stream_timeout=0.3)
        counts["cases"] += 1
        counts[outcome.code.name] += 1
        assert outcome.code not in FORBIDDEN, (
            f"{method.name} as {identity} answered {outcome} for {request!r:.2000}"
        )
        if not method.server_streaming:
            assert outcome.code != grpc.StatusCode.DEADLINE_EXCEEDED, outcome
        assert "Traceback" not in outcome.details and 'File "' not in outcome.details, outcome
        if outcome.code == grpc.StatusCode.INVALID_ARGUMENT:
            counts["invalid_argument_with_details"] += bool(outcome.status_details)
        if (
            outcome.ok
            and fuzz.protected.name in _targets(request)
            and not method.name.startswith(tuple(READ_ONLY))
        ):
            TARGETED.append((method.name, identity))

    check()
    assert fuzz.stack.healthy(), f"a server stopped answering health after fuzzing {method.name}"


def test_state_consistent_after_fuzz(fuzz: Fuzz) -> None:
    stack = fuzz.stack
    assert stack.healthy()
    runs = _all_pages(
        lambda token: stack.runs.ListTrainingRuns(
            tr.ListTrainingRunsRequest(page_size=500, page_token=token), metadata=stack.who.admin, timeout=60
        ),
        "training_runs",
    )
    assert runs, "the runs created before the fuzz are listed"
    for run in runs:
        assert RUN_NAME.match(run.name), run.name
        assert run.state in VALID_STATES, run
        assert run.owner and run.display_name.strip() and len(run.display_name) <= 200, run
        assert all(c.isprintable() or c in "\n\t" for c in run.display_name), run.display_name
        assert run.attempt >= 1 and run.model_template in TEMPLATES, run
    models = _all_pages(
        lambda token: stack.models.ListTrainedModels(
            tm.ListTrainedModelsRequest(page_size=500, page_token=token), metadata=stack.who.admin, timeout=60
        ),
        "trained_models",
    )
    for model in models:
        assert MODEL_NAME.match(model.name) and model.owner and model.version >= 1, model
    # Straight from the database too: no row carries a state outside the enum, whatever the API shows.
    with sqlite3.connect(stack.root / "training_run.db") as db:
        stored = {state for (state,) in db.execute("SELECT DISTINCT state FROM training_runs")}
    assert stored and stored <= VALID_STATES, stored
    assert fuzz.get_run(fuzz.bystander.name) == fuzz.bystander_before, "a run nobody targeted changed"
    if not TARGETED:
        after = fuzz.get_run(fuzz.protected.name)
        assert after == fuzz.protected_before, "the protected run changed without any request targeting it"
    elif ("DeleteTrainingRun", "superadmin") not in TARGETED:  # e.g. a worker claimed it: legitimate
        assert fuzz.get_run(fuzz.protected.name).state in VALID_STATES
    _write_report()


def _all_pages(fetch: Any, field: str) -> list[Any]:
    items: list[Any] = []
    token = ""
    while True:
        page = fetch(token)
        items += list(getattr(page, field))
        token = page.next_page_token
        if not token:
            return items


def _write_report() -> None:
    report = os.environ.get("RAVEN_FUZZ_REPORT")
    if not report:
        return
    data = {
        "examples_per_rpc": EXAMPLES,
        "total_cases": sum(c["cases"] for c in COUNTS.values()),
        "seconds": round(time.monotonic() - STARTED, 1),
        "protected_run_targeted_by": TARGETED,
        "per_rpc": {k: dict(v) for k, v in sorted(COUNTS.items())},
    }
    with open(report, "w") as handle:
        json.dump(data, handle, indent=2)
