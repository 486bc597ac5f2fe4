"""Lineage of a model trained on a dataset version: the version, its snapshot and its split are recorded from
the worker's completed event and shown by GetTrainedModel and GetModelLineage (real server, real SQL)."""

from __future__ import annotations

import uuid

from common.proto.raven.v1 import trained_model_pb2 as pb
from services.trained_model.entrypoints.convert import register_command
from services.trained_model.service_layer.registration import Registered
from tests.integration.trained_model.api_helpers import ALICE
from tests.integration.trained_model.conftest import Env


async def test_a_model_on_a_version_records_its_snapshot_and_split(env: Env) -> None:
    base = await env.seed(display_name="on-plain")  # a plain dataset reference: no split recorded
    event = env.completed_event(uuid.uuid4().hex[:12], display_name="on-version", base_model_id=base.id)
    done = event.completed
    done.dataset, done.dataset_version = "datasets/d1/versions/2", "datasets/d1/versions/2"
    done.dataset_snapshot_sha256, done.split_sha256 = "a" * 64, "b" * 64
    outcome = await env.app.registration.register_completed(register_command(event))
    assert isinstance(outcome, Registered), outcome
    name = f"trainedModels/{outcome.model.id}"

    model = await env.stub.GetTrainedModel(pb.GetTrainedModelRequest(name=name), metadata=ALICE)
    assert (model.dataset, model.dataset_snapshot_sha256, model.split_sha256) == (
        "datasets/d1/versions/2", "a" * 64, "b" * 64,
    )  # fmt: skip
    lineage = await env.stub.GetModelLineage(pb.GetModelLineageRequest(name=name), metadata=ALICE)
    assert (lineage.model.dataset, lineage.model.split_sha256) == ("datasets/d1/versions/2", "b" * 64)
    assert lineage.model.dataset_snapshot_sha256 == "a" * 64
    assert [(n.trained_model, n.split_sha256) for n in lineage.ancestors] == [
        (f"trainedModels/{base.id}", "")
    ]
