"""ListTrainedModels(dataset=<plain reference>) keeps finding the models of runs created with that reference,
now that such runs train on an implicit dataset version (TrainedModel.dataset is the version's name): the
registrar stores the reference (RunCompleted.dataset_reference) and the filter matches it as well.

Real trained_model server, its registrar over real JetStream, SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from common.proto.raven.v1 import trained_model_pb2 as pb
from tests.integration.trained_model.api_helpers import ALICE
from tests.integration.trained_model.conftest import Env
from tests.integration.trained_model.test_registrar import replies


async def register(env: Env, js, run_id: str, dataset: str, reference: str, version: str = "") -> None:  # type: ignore[no-untyped-def]
    event = env.completed_event(run_id, display_name=f"ref-{run_id}")
    done = event.completed
    done.dataset, done.dataset_reference, done.dataset_version = dataset, reference, version
    await js.publish(env.names.run_events_subject(run_id), event.SerializeToString())
    await replies(js, env, run_id, "model_registered")


async def listed(env: Env, dataset: str) -> set[str]:
    page = await env.stub.ListTrainedModels(pb.ListTrainedModelsRequest(dataset=dataset), metadata=ALICE)
    assert page.total_size == len(page.trained_models)
    return {m.training_run.removeprefix("trainingRuns/") for m in page.trained_models}


async def test_a_plain_reference_lists_the_models_of_its_implicit_versions(env: Env, js) -> None:  # type: ignore[no-untyped-def]
    reference = f"waste/{uuid.uuid4().hex[:8]}"
    implicit_1, implicit_2 = "datasets/imp1/versions/1", "datasets/imp1/versions/2"
    runs = {k: uuid.uuid4().hex[:12] for k in ("old", "plain1", "plain2", "explicit", "other")}
    await register(
        env, js, runs["old"], reference, reference
    )  # before implicit versions: dataset = reference
    await register(env, js, runs["plain1"], implicit_1, reference, implicit_1)
    await register(env, js, runs["plain2"], implicit_2, reference, implicit_2)
    await register(env, js, runs["explicit"], implicit_1, "", implicit_1)  # created with dataset_version
    await register(
        env, js, runs["other"], "datasets/imp9/versions/1", "other/dir", "datasets/imp9/versions/1"
    )

    assert await listed(env, reference) == {runs["old"], runs["plain1"], runs["plain2"]}
    assert await listed(env, implicit_1) == {runs["plain1"], runs["explicit"]}  # a version: by name only
    assert await listed(env, f"{reference}x") == set()

    got = await env.stub.ListTrainedModels(pb.ListTrainedModelsRequest(dataset=implicit_2), metadata=ALICE)
    (model,) = got.trained_models
    assert (model.dataset, model.dataset_reference) == (implicit_2, reference)
