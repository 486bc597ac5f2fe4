"""A real run on a dataset whose category names carry config payloads, then an import of that run's own files.

Before the gate, such a run trained to SUCCEEDED with the payloads in its stored ``config.py``, and importing
that config ran them inside trained_model (``{{$RAVEN_JWT_SECRET:x}}`` even showed the signing secret). Now
the names stay data: the run trains, its stored config is JSON without server paths or secrets, and importing
it answers INVALID_ARGUMENT without running anything.

The whole embedded stack (nats-server, both services, one CPU worker) runs as in ``make demo``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from common.auth import USER_PERMISSIONS, Permission, mint_token
from common.proto.raven.v1 import trained_model_pb2, trained_model_pb2_grpc, training_run_pb2_grpc, types_pb2
from common.proto.raven.v1 import training_run_pb2 as tr
from common.tls import sync_channel
from scripts.stack import Stack
from tests.fixtures.synthetic_coco import make_dataset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
TERMINAL = {types_pb2.SUCCEEDED, types_pb2.FAILED, types_pb2.CANCELLED}


@pytest.fixture(scope="module")
def canary() -> Iterator[str]:
    name = f"raven-canary-{uuid.uuid4().hex[:8]}"
    yield name
    for place in (Path.cwd(), Path("/tmp")):
        assert not (place / name).exists(), "a category name was executed as code"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, canary: str) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("gate-e2e")
    classes = ("{{$RAVEN_JWT_SECRET:x}}", f"__import__('os').system('touch {canary}')", "{{ fileDirname }}")
    make_dataset(data_dir / "datasets" / "hostile", n_images=12, size=128, classes=classes, seed=5)
    with Stack(data_dir, jwt_secret=f"secret-{uuid.uuid4().hex}") as running:
        yield running


def user(stack: Stack, subject: str) -> tuple[tuple[str, str], ...]:
    permissions = USER_PERMISSIONS - {Permission.VIEW_ALL_TRAINING_RUNS, Permission.VIEW_ALL_MODELS}
    return (("authorization", f"Bearer {mint_token(subject, permissions, secret=stack.jwt_secret)}"),)


def absolute_strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in absolute_strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in absolute_strings(v)]
    return [node] if isinstance(node, str) and node.startswith("/") else []


def rename_strings(node: object, renamed: dict[str, str]) -> object:
    if isinstance(node, dict):
        return {k: rename_strings(v, renamed) for k, v in node.items()}
    if isinstance(node, list):
        return [rename_strings(v, renamed) for v in node]
    return renamed.get(node, node) if isinstance(node, str) else node


def test_hostile_category_names_train_and_the_run_config_cannot_be_imported_as_code(
    stack: Stack, canary: str
) -> None:
    who = user(stack, "mallory")
    channel = sync_channel(f"127.0.0.1:{stack.ports['training_run']}", stack.client_tls())
    models_channel = sync_channel(f"127.0.0.1:{stack.ports['trained_model']}", stack.client_tls())
    runs = training_run_pb2_grpc.TrainingRunServiceStub(channel)
    models = trained_model_pb2_grpc.TrainedModelServiceStub(models_channel)
    hp = types_pb2.Hyperparameters(epochs=1, batch_size=4, image_size=128, val_interval=1, seed=1)
    run = runs.CreateTrainingRun(
        tr.CreateTrainingRunRequest(
            training_run=tr.TrainingRun(
                display_name="hostile classes",
                dataset="hostile",
                model_template="rtmdet_tiny",
                hyperparameters=hp,
            )
        ),
        metadata=who,
        timeout=60,
    )
    deadline = time.monotonic() + 600
    while run.state not in TERMINAL and time.monotonic() < deadline:
        time.sleep(2)
        run = runs.GetTrainingRun(tr.GetTrainingRunRequest(name=run.name), metadata=who, timeout=30)
    assert run.state == types_pb2.SUCCEEDED, run.failure

    model = models.GetTrainedModel(
        trained_model_pb2.GetTrainedModelRequest(name=run.trained_model), metadata=who, timeout=30
    )
    config_artifact = next(a for a in model.artifacts if a.kind == types_pb2.CONFIG)
    stored_text = (stack.data_dir / "artifacts" / config_artifact.uri).read_text()
    stored = json.loads(stored_text)
    for text in (stored_text, model.config_text, json.dumps(json_format.MessageToDict(model.config))):
        assert stack.jwt_secret not in text
        assert str(stack.data_dir) not in text  # no server path: data, work dir and weights are relative
    assert absolute_strings(stored) == [] and "{{$RAVEN_JWT_SECRET:x}}" in stored_text  # names kept as data

    request = trained_model_pb2.ImportTrainedModelRequest(
        display_name="re-import", config_uri=config_artifact.uri, checkpoint_uri=model.checkpoint.uri,
        class_names=list(model.class_names),
    )  # fmt: skip
    with pytest.raises(grpc.RpcError) as caught:
        models.ImportTrainedModel(request, metadata=who, timeout=120)
    error: grpc.RpcError = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()  # type: ignore[attr-defined]
    assert "'{{' is not allowed" in error.details()  # type: ignore[attr-defined]
    assert stack.jwt_secret not in error.details()  # type: ignore[attr-defined]

    # The same run config with plain class names imports (with the run's own checkpoint) and passes the gate.
    renamed = dict(zip(model.class_names, ("a", "b", "c"), strict=True))
    clean = rename_strings(stored, renamed)
    target = stack.data_dir / "artifacts" / "imports" / "clean" / "config.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(clean))
    request.config_uri, request.class_names[:] = "imports/clean/config.json", ["a", "b", "c"]
    imported = models.ImportTrainedModel(request, metadata=who, timeout=120)
    assert json_format.MessageToDict(imported.config)["work_dir"] == "train"
    channel.close()
    models_channel.close()
