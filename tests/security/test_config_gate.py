"""The config gate end to end on the real servers: configs are data, never code; keys use one strict charset;
imports respect ownership; models stored before the gate cannot be published or fine-tuned from.

Every payload would create a canary file if anything executed it; the tests check it never appears.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from common.proto.raven.v1 import trained_model_pb2 as tm
from common.proto.raven.v1 import training_run_pb2 as tr
from services.trained_model.domain.model import Artifact, ArtifactKind, TrainedModel
from services.trained_model.service_layer.config_audit import stored_configs_failing_gate
from tests.security.rpc import Outcome
from tests.security.stack import JSON_CONFIG, Stack, checkpoint_bytes
from tests.security.test_hostile_inputs import TM, TR, call, violations

MODEL = "model = dict(type='RTMDet', bbox_head=dict(type='RTMDetSepBNHead', num_classes=2))\n"


@pytest.fixture
def canary() -> Iterator[str]:
    """A file name (no '/': it must fit in a key) created in the working directory if a payload ran."""
    name = f"raven-canary-{uuid.uuid4().hex[:8]}"
    yield name
    assert not (Path.cwd() / name).exists(), "a config payload was executed"
    assert not Path(f"/tmp/{name}").exists(), "a config payload was executed"


def import_request(config_key: str, checkpoint_key: str, **fields: Any) -> tm.ImportTrainedModelRequest:
    return tm.ImportTrainedModelRequest(
        display_name=fields.pop("display_name", "gate"),
        config_uri=config_key,
        checkpoint_uri=checkpoint_key,
        class_names=["dump", "tyre"],
        **fields,
    )


def put_import(stack: Stack, name: str, source: str) -> tuple[str, str]:
    prefix = f"imports/{uuid.uuid4().hex[:8]}"
    stack.store.put_bytes(f"{prefix}/{name}", source.encode())
    stack.store.put_bytes(f"{prefix}/model.pth", checkpoint_bytes(2))
    return f"{prefix}/{name}", f"{prefix}/model.pth"


def refused(outcome: Outcome, field: str, text: str) -> str:
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT, outcome
    found = violations(outcome)
    assert field in found and text in found[field], (found, text)
    return found[field]


# ---- reproductions of the issue ----------------------------------------------------------------------------
def test_predefined_variable_substitution_is_refused(stack: Stack, canary: str) -> None:
    config, ckpt = put_import(stack, "config.py", "a = '{{ fileDirname }}'\n")
    refused(call(stack, TM + "ImportTrainedModel", import_request(config, ckpt), stack.who.alice),
            "config_uri", "'{{' is not allowed")  # fmt: skip


def test_a_key_carrying_code_is_refused_and_never_executed(stack: Stack, canary: str) -> None:
    hostile_dir = f"x'+__import__('os').system('touch {canary}')+'"
    # Written straight into the store's directory (the API would not let such a key in).
    target = stack.artifact_root / hostile_dir / "config.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("a = '{{ fileDirname }}'\n" + MODEL)
    _, ckpt = put_import(stack, "unused.json", "{}")
    outcome = call(
        stack, TM + "ImportTrainedModel", import_request(f"{hostile_dir}/config.py", ckpt), stack.who.alice
    )
    refused(outcome, "config_uri", "only letters, digits")
    # Nor through a _base_ entry of an ordinary config.
    config, ckpt = put_import(stack, "config.py", f'_base_ = "../../{hostile_dir}/config.py"\n' + MODEL)
    refused(call(stack, TM + "ImportTrainedModel", import_request(config, ckpt), stack.who.alice),
            "config_uri", "does not resolve inside the artifact store")  # fmt: skip


@pytest.mark.parametrize("suffix", ["py", "json"])
def test_environment_variables_never_reach_a_config(stack: Stack, suffix: str) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    os.environ["RAVEN_GATE_CANARY_SECRET"] = secret  # the servers run in this process
    try:
        payload = "{{$RAVEN_GATE_CANARY_SECRET:x}}"
        source = (
            f"a = '{payload}'\n" + MODEL
            if suffix == "py"
            else json.dumps({**JSON_CONFIG, "classes": [payload]})
        )
        config, ckpt = put_import(stack, f"config.{suffix}", source)
        outcome = call(stack, TM + "ImportTrainedModel", import_request(config, ckpt), stack.who.alice)
        refused(outcome, "config_uri", "'{{' is not allowed")
        assert secret not in outcome.details and secret.encode() not in outcome.status_details
    finally:
        del os.environ["RAVEN_GATE_CANARY_SECRET"]


def test_a_hook_that_runs_a_command_is_refused_at_import(stack: Stack, canary: str) -> None:
    hook = f"custom_hooks = [dict(type='subprocess.getoutput', cmd='touch {canary}')]\n"
    config, ckpt = put_import(stack, "config.py", MODEL + hook)
    description = refused(
        call(stack, TM + "ImportTrainedModel", import_request(config, ckpt), stack.who.alice),
        "config_uri",
        "custom_hooks[0].type: 'subprocess.getoutput' is a dotted name",
    )
    assert "/" + "tmp" not in description  # no server path in the message
    json_hook = {**JSON_CONFIG, "custom_hooks": [{"type": "getoutput", "cmd": f"touch {canary}"}]}
    config, ckpt = put_import(stack, "config.json", json.dumps(json_hook))
    outcome = call(stack, TM + "ImportTrainedModel", import_request(config, ckpt), stack.who.alice)
    refused(
        outcome, "config_uri", "custom_hooks[0].type: 'getoutput' is not a registered mmdet/mmengine class"
    )


# ---- ownership of the imported files -----------------------------------------------------------------------
def test_import_of_another_owners_run_files_is_not_found(stack: Stack) -> None:
    run = stack.create_run(stack.who.bob, "bob's run")
    run_id = run.name.split("/", 1)[1]
    config = f"runs/{run_id}/attempt-1/config.json"
    ckpt = f"runs/{run_id}/attempt-1/best_coco_bbox_mAP_epoch_1.pth"
    stack.store.put_bytes(config, json.dumps(JSON_CONFIG).encode())
    stack.store.put_bytes(ckpt, checkpoint_bytes(2))

    stolen = call(stack, TM + "ImportTrainedModel", import_request(config, ckpt), stack.who.alice)
    assert stolen.code == grpc.StatusCode.NOT_FOUND, stolen
    assert "does not exist or is not visible to you" in stolen.details
    own_config, _ = put_import(stack, "config.json", json.dumps(JSON_CONFIG))
    only_ckpt = call(stack, TM + "ImportTrainedModel", import_request(own_config, ckpt), stack.who.alice)
    assert only_ckpt.code == grpc.StatusCode.NOT_FOUND, only_ckpt
    for who in (stack.who.bob, stack.who.admin):  # the owner, and a caller who may see every owner
        assert call(stack, TM + "ImportTrainedModel", import_request(config, ckpt), who).ok


def test_import_of_another_owners_model_files_is_not_found(stack: Stack) -> None:
    model = stack.import_model(stack.who.bob, "bob's model")  # unpublished: only bob (and admins) see it
    assert model.checkpoint.uri.startswith("trained_models/")
    config = next(a.uri for a in model.artifacts if a.uri.endswith("config.json"))
    stolen = call(
        stack, TM + "ImportTrainedModel", import_request(config, model.checkpoint.uri), stack.who.alice
    )
    assert stolen.code == grpc.StatusCode.NOT_FOUND, stolen
    assert call(
        stack, TM + "ImportTrainedModel", import_request(config, model.checkpoint.uri), stack.who.bob
    ).ok


# ---- models stored before the gate -------------------------------------------------------------------------
def insert_pre_gate_model(stack: Stack, owner: str, *, published: bool, canary: str) -> str:
    """A model as an import before the gate could leave it: the row and files written directly."""
    model_id = uuid.uuid4().hex
    ckpt = stack.store.put_bytes(f"trained_models/{model_id}/checkpoint.pth", checkpoint_bytes(3))
    config = {
        **json.loads(json.dumps(JSON_CONFIG)),
        "custom_hooks": [{"type": "subprocess.getoutput", "cmd": f"touch {canary}"}],
    }
    config["model"]["bbox_head"]["num_classes"] = 3
    now = datetime.now(UTC)
    model = TrainedModel(
        id=model_id, display_name=f"pre-gate-{model_id[:6]}", version=1, owner=owner,
        checkpoint=Artifact(ArtifactKind.CHECKPOINT, ckpt.key, ckpt.size_bytes, ckpt.sha256),
        create_time=now, update_time=now, class_names=["bottle", "tire", "bag"], model_template="rtmdet_tiny",
        config=config, config_text=json.dumps(config), config_sha256="0" * 64, published=published,
        published_by=owner if published else "", publish_time=now if published else None,
    )  # fmt: skip
    assert stack.tm_app is not None

    async def add() -> None:
        async with stack.tm_app.registry.uow() as uow:  # type: ignore[union-attr]
            await uow.models.add(model)
            await uow.commit()

    stack.call(add())
    return model.name


def test_a_pre_gate_model_cannot_be_published_or_used_as_a_base(stack: Stack, canary: str) -> None:
    draft = insert_pre_gate_model(stack, "alice", published=False, canary=canary)
    outcome = call(
        stack, TM + "PublishTrainedModel", tm.PublishTrainedModelRequest(name=draft), stack.who.alice
    )
    assert outcome.code == grpc.StatusCode.FAILED_PRECONDITION, outcome
    assert "custom_hooks[0].type: 'subprocess.getoutput'" in outcome.details and "import" in outcome.details

    published = insert_pre_gate_model(stack, "alice", published=True, canary=canary)
    request = tr.CreateTrainingRunRequest(
        training_run=tr.TrainingRun(
            display_name="from a bad base", dataset=stack.dataset, base_model=published
        )
    )
    outcome = call(stack, TR + "CreateTrainingRun", request, stack.who.alice)
    assert outcome.code == grpc.StatusCode.FAILED_PRECONDITION, outcome
    assert "cannot be used as a base" in outcome.details
    assert "custom_hooks[0].type: 'subprocess.getoutput'" in outcome.details

    assert stack.tm_app is not None
    failing = stack.call(stored_configs_failing_gate(stack.tm_app.registry.uow))
    reported = {f.name: f for f in failing}
    assert {draft, published} <= set(reported)
    assert reported[published].published and "custom_hooks[0].type" in reported[published].problem
