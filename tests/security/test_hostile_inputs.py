"""Hostile strings: stored as plain data or refused with INVALID_ARGUMENT + a field violation, never executed,
never escaping their root.

Marker-file payloads (``__import__('os').system('touch …')``, format braces, shell syntax) would leave a file
behind if anything evaluated or formatted them as code; the tests check that file never appears.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from common.proto.raven.v1 import trained_model_pb2 as tm
from common.proto.raven.v1 import training_run_pb2 as tr
from common.proto.raven.v1 import types_pb2
from tests.security.rpc import Outcome, all_methods, invoke, on_trained_model_server, path
from tests.security.stack import JSON_CONFIG, Stack, checkpoint_bytes, write_dataset

METHODS = {path(m): m for m in all_methods()}
TR = "/raven.v1.TrainingRunService/"
TM = "/raven.v1.TrainedModelService/"


@pytest.fixture(scope="module")
def marker(stack: Stack) -> Path:
    path = Path(f"/tmp/raven-pwned-{uuid.uuid4().hex[:8]}")
    yield path
    assert not path.exists(), "a hostile string was executed"


def payloads(marker: Path) -> list[str]:
    return [
        f"__import__('os').system('touch {marker}')",
        f"'); __import__('os').system('touch {marker}'); ('",
        f'"""\nimport os; os.system("touch {marker}")\n"""',
        "x' + str(__import__('os').system('touch " + str(marker) + "')) + '",
        "{{7*7}} {0.__class__.__mro__} {self}",
        f"${{os.system('touch {marker}')}} $(touch {marker}) `touch {marker}`",
        "quote ' double \" backslash \\ end",
        "line one\nline two\ttabbed",
        "%s %d %(name)s",
        "<script>alert(1)</script>",
        "'; DROP TABLE training_runs; --",
        "ünïcödé 🚮 垃圾 مكب",
        "L" * 180,
    ]


def call(stack: Stack, method_path: str, request: Any, who: Any) -> Outcome:
    channel = stack.tm_channel if on_trained_model_server(method_path) else stack.tr_channel
    return invoke(channel, METHODS[method_path], request, who, timeout=60, stream_timeout=1.5)


def violations(outcome: Outcome) -> dict[str, str]:
    status = status_pb2.Status.FromString(outcome.status_details)
    found: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def assert_refused(outcome: Outcome, field: str) -> None:
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT, outcome
    assert field in violations(outcome), (field, violations(outcome), outcome)


def run_request(stack: Stack, **fields: Any) -> tr.CreateTrainingRunRequest:
    values: dict[str, Any] = {
        "display_name": "hostile",
        "dataset": stack.dataset,
        "model_template": "rtmdet_tiny",
    }
    values.update(fields)
    return tr.CreateTrainingRunRequest(
        training_run=tr.TrainingRun(hyperparameters=types_pb2.Hyperparameters(epochs=1), **values)
    )


def lists_in(value: Any) -> list[list[Any]]:
    """Every list inside a JSON-like value."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in lists_in(v)]
    if isinstance(value, list):
        return [value] + [x for v in value for x in lists_in(v)]
    return []


# ---- class names and run names -----------------------------------------------------------------------------
def test_hostile_class_names_are_data_in_the_resolved_config(stack: Stack, marker: Path) -> None:
    classes = payloads(marker)
    dataset = write_dataset(stack.dataset_root, f"hostile-{uuid.uuid4().hex[:6]}", classes)
    for given in ([], classes):  # classes from the dataset, and the same classes named in the request
        outcome = call(
            stack,
            TR + "CreateTrainingRun",
            run_request(stack, dataset=dataset, class_names=given),
            stack.who.alice,
        )
        assert outcome.ok, outcome
        run = stack.runs.GetTrainingRun(
            tr.GetTrainingRunRequest(name=outcome.responses[0].name), metadata=stack.who.alice
        )
        assert list(run.class_names) == classes
        data = json_format.MessageToDict(run.resolved_config_data)
        assert classes in lists_in(data), "the class names are stored verbatim as a list in the config data"
        for name in classes:  # the pretty text quotes them as literals
            assert repr(name) in run.resolved_config or json.dumps(name) in run.resolved_config, name
        assert not marker.exists()


def test_hostile_run_names_are_stored_verbatim(stack: Stack, marker: Path) -> None:
    for text in payloads(marker):
        created = stack.runs.CreateTrainingRun(
            run_request(stack, display_name=text, description=text), metadata=stack.who.alice, timeout=60
        )
        got = stack.runs.GetTrainingRun(tr.GetTrainingRunRequest(name=created.name), metadata=stack.who.alice)
        assert (got.display_name, got.description) == (text, text)
        listed = stack.runs.ListTrainingRuns(
            tr.ListTrainingRunsRequest(page_size=500), metadata=stack.who.alice
        )
        assert text in {r.display_name for r in listed.training_runs}
        renamed = stack.runs.UpdateTrainingRun(
            tr.UpdateTrainingRunRequest(
                training_run=tr.TrainingRun(name=created.name, display_name=text[::-1]),
                update_mask={"paths": ["display_name"]},
            ),
            metadata=stack.who.alice,
        )
        assert renamed.display_name == text[::-1]
    assert not marker.exists()


@pytest.mark.parametrize(
    "display_name", ["", "   ", "nul\x00byte", "escape\x1b[31m", "bell\x07", "x" * 201, "y" * 100_000]
)
def test_unprintable_or_oversized_run_names_are_refused(stack: Stack, display_name: str) -> None:
    outcome = call(
        stack, TR + "CreateTrainingRun", run_request(stack, display_name=display_name), stack.who.alice
    )
    assert_refused(outcome, "training_run.display_name")


@pytest.mark.parametrize("bad", ["", "x" * 201, "nul\x00", "\x1b"])
def test_bad_class_names_are_refused_with_a_field_violation(stack: Stack, bad: str) -> None:
    outcome = call(
        stack, TR + "CreateTrainingRun", run_request(stack, class_names=["bottle", bad]), stack.who.alice
    )
    assert_refused(outcome, "training_run.class_names")


# ---- dataset references ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def outside(stack: Stack) -> Path:
    """A valid-looking dataset outside the dataset root, and a symlink to it inside the root."""
    target = stack.root / "outside-dataset"
    write_dataset(target, "secret", ["stolen-class"])
    (stack.dataset_root / "escape").symlink_to(target / "secret", target_is_directory=True)
    (stack.dataset_root / "waste" / "escape-up").symlink_to(target, target_is_directory=True)
    return target


ESCAPING_REFS = [
    "..",
    "../outside-dataset/secret",
    "waste/../../outside-dataset/secret",
    "waste/./v1",
    "./waste/v1",
    "/etc",
    "/tmp",
    "~root",
    "file:///etc",
    "file://waste/v1",
    "s3://bucket/waste",
    "gcs://bucket/waste",
    "waste/v1\x00",
    "waste\x00/v1",
    "waste\\..\\..\\etc",
    "waste/v1\n",
    "escape",  # a symlink in the root pointing outside it
    "waste/escape-up/secret",  # a symlinked directory in the middle of the path
    "d" * 501,
]


@pytest.mark.parametrize("ref", ESCAPING_REFS)
def test_dataset_refs_cannot_escape_the_dataset_root(stack: Stack, outside: Path, ref: str) -> None:
    outcome = call(stack, TR + "CreateTrainingRun", run_request(stack, dataset=ref), stack.who.alice)
    assert_refused(outcome, "training_run.dataset")
    assert "stolen-class" not in outcome.details and b"stolen-class" not in outcome.status_details
    # Nor through the listing filter (plain data there: nothing matches).
    listed = call(stack, TR + "ListTrainingRuns", tr.ListTrainingRunsRequest(dataset=ref), stack.who.admin)
    assert listed.ok and listed.responses[0].total_size == 0, listed


# ---- artifact keys -----------------------------------------------------------------------------------------
ESCAPING_KEYS = [
    "../config.json",
    "imports/../../config.json",
    "imports/./x/config.json",
    "/etc/passwd",
    "file:///etc/passwd",
    "s3://bucket/config.json",
    "imports\\..\\..\\config.json",
    "imports/x/config.json\x00.png",
    "..",
    ".",
]


@pytest.mark.parametrize("key", ESCAPING_KEYS)
@pytest.mark.parametrize("which", ["config_uri", "checkpoint_uri"])
def test_import_artifact_keys_cannot_escape_the_artifact_root(stack: Stack, which: str, key: str) -> None:
    prefix = uuid.uuid4().hex[:8]
    stack.store.put_bytes(f"imports/{prefix}/config.json", json.dumps(JSON_CONFIG).encode())
    stack.store.put_bytes(f"imports/{prefix}/model.pth", checkpoint_bytes(2))
    request = tm.ImportTrainedModelRequest(
        display_name="escape",
        config_uri=f"imports/{prefix}/config.json",
        checkpoint_uri=f"imports/{prefix}/model.pth",
        class_names=["dump", "tyre"],
    )
    setattr(request, which, key)
    outcome = call(stack, TM + "ImportTrainedModel", request, stack.who.alice)
    assert_refused(outcome, which)


@pytest.mark.parametrize("key", ESCAPING_KEYS)
@pytest.mark.parametrize("method", ["HeartbeatTrainingRun", "ReleaseTrainingRun"])
def test_worker_checkpoint_keys_cannot_escape_the_artifact_root(stack: Stack, method: str, key: str) -> None:
    run = stack.create_run(stack.who.alice, "checkpoint keys")
    claimed = stack.runs.ClaimTrainingRun(
        tr.ClaimTrainingRunRequest(name=run.name, worker_id="w-hostile", job_attempt=1),
        metadata=stack.who.worker,
    )
    request_type = (
        tr.HeartbeatTrainingRunRequest if method == "HeartbeatTrainingRun" else tr.ReleaseTrainingRunRequest
    )
    request = request_type(
        name=run.name, worker_id="w-hostile", attempt=claimed.attempt, latest_checkpoint=key
    )
    assert_refused(call(stack, TR + method, request, stack.who.worker), "latest_checkpoint")


def test_import_of_a_python_config_that_runs_code_is_refused(stack: Stack, marker: Path) -> None:
    prefix = uuid.uuid4().hex[:8]
    sources = [
        f"import os\nos.system('touch {marker}')\nmodel = dict(bbox_head=dict(num_classes=2))\n",
        f"model = dict(bbox_head=dict(num_classes=__import__('os').system('touch {marker}') + 2))\n",
        "_base_ = ['../../../../../../tmp/x.py']\nmodel = dict(bbox_head=dict(num_classes=2))\n",
        "custom_imports = dict(imports=['os'])\nmodel = dict(bbox_head=dict(num_classes=2))\n",
    ]
    stack.store.put_bytes(f"imports/{prefix}/model.pth", checkpoint_bytes(2))
    for i, source in enumerate(sources):
        stack.store.put_bytes(f"imports/{prefix}/c{i}.py", source.encode())
        outcome = call(
            stack,
            TM + "ImportTrainedModel",
            tm.ImportTrainedModelRequest(
                display_name="evil",
                config_uri=f"imports/{prefix}/c{i}.py",
                checkpoint_uri=f"imports/{prefix}/model.pth",
                class_names=["dump", "tyre"],
            ),
            stack.who.alice,
        )
        assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT, (source, outcome)
        assert violations(outcome), outcome
        assert not marker.exists(), source


# ---- forged tokens and oversized input ---------------------------------------------------------------------
def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


FORGED_LOG_TOKENS = [
    {"i": "abc"},
    {"i": [1]},
    {"i": None},
    {"i": 10**30},
    {"i": -1},
    {"i": 1.5e300},
    {"i": True},
    {"a": "x"},
    {"a": 10**30},
    {"a": -5},
    [1],
    "text",
    {},
]


@pytest.mark.parametrize("forged", FORGED_LOG_TOKENS, ids=[json.dumps(t) for t in FORGED_LOG_TOKENS])
def test_forged_log_page_tokens_are_invalid_argument(stack: Stack, forged: Any) -> None:
    run = stack.create_run(stack.who.alice, "logs")
    request = tr.GetTrainingRunLogsRequest(name=run.name, page_token=_b64(forged))
    outcome = call(stack, TR + "GetTrainingRunLogs", request, stack.who.alice)
    # {} is a (degenerate) token with the defaults: fine to serve; anything malformed is INVALID_ARGUMENT.
    if forged == {}:
        assert outcome.ok, outcome
    else:
        assert_refused(outcome, "page_token")


@pytest.mark.parametrize("size", [1_000, 20_000, 200_000])
@pytest.mark.parametrize(
    "method_path",
    [TR + "GetTrainingRun", TR + "CancelTrainingRun", TM + "GetTrainedModel", TM + "PublishTrainedModel"],
)
def test_huge_names_get_invalid_argument_not_a_transport_error(
    stack: Stack, method_path: str, size: int
) -> None:
    """The error may quote the input, but bounded: the status must still fit in the response trailers."""
    request = METHODS[method_path].input_type._concrete_class(name="é" * size)
    outcome = call(stack, method_path, request, stack.who.admin)
    assert_refused(outcome, "name")
    assert len(outcome.details.encode()) <= 600 and len(outcome.status_details) < 4096


def test_sql_and_format_strings_in_filters_are_plain_data(stack: Stack, marker: Path) -> None:
    for text in [*payloads(marker), "%", "_", "' OR '1'='1", "*"]:
        runs = stack.runs.ListTrainingRuns(
            tr.ListTrainingRunsRequest(dataset=text, model_template=text, owner=text),
            metadata=stack.who.admin,
        )
        assert runs.total_size == 0 and not runs.training_runs, text
        models = stack.models.ListTrainedModels(
            tm.ListTrainedModelsRequest(display_name=text, dataset=text, owner=text), metadata=stack.who.admin
        )
        assert models.total_size == 0 and not models.trained_models, text
    assert os.path.exists(stack.root / "training_run.db")
