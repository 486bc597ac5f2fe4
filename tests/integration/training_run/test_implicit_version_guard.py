"""The fine-tune guard on a plain dataset reference's implicit version: at Create when the version is READY
(FAILED_PRECONDITION), else when it becomes READY (the waiting run ends FAILED with the guard's message, the
others are queued).

Real training_run server, real JetStream, SQLite and PostgreSQL (``harness``), the trainer worker's real
preparation intake. The base models come from the stand-in trained_model server, with a split manifest in the
real artifact store."""

from __future__ import annotations

import hashlib
import json
import uuid

import grpc
import pytest
from google.protobuf import struct_pb2

from common.artifacts import ArtifactStore
from common.hyperparameters import HyperParams
from common.mmdet_config import build_config
from common.proto.raven.v1 import trained_model_pb2, training_run_pb2, types_pb2
from tests.integration.training_run.conftest import CLASSES, Harness, awaiting_version, write_dataset
from tests.integration.training_run.datasets_support import Datasets, dataset_root


def base_model(h: Harness, trained_on: list[str], dataset: str = "survey-2025") -> str:
    """A published base model whose run recorded ``trained_on`` (content sha256s) as its train split."""
    store = ArtifactStore(h.app.settings.artifact_root)
    name = f"base{uuid.uuid4().hex[:10]}"
    trained = json.dumps({"train_sha256": trained_on}).encode()
    manifest = store.put_bytes(f"runs/{name}/split_manifest.json", trained)
    config = struct_pb2.Struct()
    config.update(json.loads(json.dumps(build_config("rtmdet_tiny", CLASSES, HyperParams()).data)))
    h.trained_models.models[f"trainedModels/{name}"] = trained_model_pb2.TrainedModel(
        name=f"trainedModels/{name}", published=True, class_names=CLASSES,
        model_template="rtmdet_tiny", checkpoint=types_pb2.Artifact(uri=f"models/{name}/ckpt.pth"),
        dataset=dataset, config=config,
        artifacts=[
            types_pb2.Artifact(kind=types_pb2.SPLIT_MANIFEST, uri=manifest.key, sha256=manifest.sha256)
        ],
    )  # fmt: skip
    return f"trainedModels/{name}"


def file_hashes(h: Harness, directory: str) -> list[str]:
    """The content sha256 of every image of the dataset directory (a base model that trained on all of it)."""
    images = sorted((dataset_root(h) / directory / "img").iterdir())
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in images]


async def held_out(h: Harness, version_name: str) -> int:
    """How many images the version's val and test splits hold (all distinct contents here)."""
    version = await Datasets.of(h).get_version(version_name)
    frozen = json.loads(ArtifactStore(h.app.settings.artifact_root).read_bytes(version.split_manifest.uri))
    return len(frozen["file_names"]["val"]) + len(frozen["file_names"]["test"])


async def create(h: Harness, dataset: str, base: str, allow: bool = False) -> training_run_pb2.TrainingRun:
    request = training_run_pb2.CreateTrainingRunRequest(
        training_run=training_run_pb2.TrainingRun(
            display_name="fine-tune", dataset=dataset, base_model=base, model_template="rtmdet_tiny",
            hyperparameters=types_pb2.Hyperparameters(epochs=2),
        ),
        allow_split_overlap=allow,
    )  # fmt: skip
    return await h.stub.CreateTrainingRun(request, metadata=h.user)


async def test_a_ready_implicit_version_is_guarded_at_create(harness: Harness) -> None:
    h = harness
    first = await h.create()  # prepared meanwhile: READY
    assert not awaiting_version(first) and first.split_sha256
    everything = base_model(h, file_hashes(h, h.dataset))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create(h, h.dataset, everything)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = refused.value.details() or ""
    assert f"{await held_out(h, first.dataset_version)} image(s)" in details
    assert first.dataset_version in details and "allow_split_overlap" in details

    accepted = await create(h, h.dataset, everything, allow=True)
    assert accepted.dataset_version == first.dataset_version and accepted.split_sha256
    clean = await create(h, h.dataset, base_model(h, ["f" * 64]))  # trained on none of these images
    assert clean.dataset_version == first.dataset_version and clean.state == types_pb2.PENDING
    same = base_model(h, file_hashes(h, h.dataset), dataset=first.dataset_version)  # shares the split
    assert (await create(h, h.dataset, same)).dataset_version == first.dataset_version


async def test_a_waiting_run_is_guarded_when_its_version_becomes_ready(harness: Harness) -> None:
    h = harness
    directory = write_dataset(dataset_root(h), "waste/guarded", per_class=4)
    everything = base_model(h, file_hashes(h, directory))
    h.prepares = False  # the version stays PENDING until the intake below prepares it
    leaky = await create(h, directory, everything)
    allowed = await create(h, directory, everything, allow=True)
    clean = await create(h, directory, base_model(h, ["f" * 64]))
    for run in (leaky, allowed, clean):
        assert awaiting_version(run) and run.dataset_version == leaky.dataset_version

    prepared = await h.prepare_version(leaky)
    assert prepared.state == types_pb2.FAILED, prepared
    assert prepared.failure.kind == types_pb2.INVALID_CONFIG
    message = prepared.failure.message
    assert f"{await held_out(h, leaky.dataset_version)} image(s)" in message
    assert leaky.dataset_version in message and "allow_split_overlap" in message
    for run in (allowed, clean):
        queued = await h.wait_for(run.name, lambda r: not awaiting_version(r))
        assert queued.state == types_pb2.PENDING and queued.split_sha256
