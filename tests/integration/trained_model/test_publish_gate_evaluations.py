"""The champion gate starts the evaluation it needs, against the real trained_model and training_run servers
(SQLite and PostgreSQL, real NATS, a READY dataset version prepared by the worker's real intake):

- a candidate of another dataset version, published without an evaluation on the champion's test split, is
  refused naming an evaluation the gate started (it exists: GetEvaluation); publishing again names the same
  one and starts no other; once the worker's claim and result (its real adapters) finish it, the publish is
  decided on both numbers;
- a FAILED one is named and another started, also for a caller without evaluations.create;
- an evaluation cancelled while PENDING is never run: the real worker intake's claim is refused and the job
  acked, and nothing is reported for it.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import grpc

from common.auth import USER_PERMISSIONS, Permission
from common.proto.raven.v1 import evaluations_pb2, trained_model_pb2, trained_model_pb2_grpc, types_pb2
from services.trainer_worker.adapters.evaluation_jobs import EvaluationEventPublisher, NatsEvaluationClaims
from services.trainer_worker.domain.job import Settlement
from tests.helpers import bearer, token
from tests.integration.trained_model.evaluation_support import (  # noqa: F401 (fixtures)
    ALICE,
    Env,
    evaluation_env,
    make_harness,
    status_of,
    trained_models,
)
from tests.integration.trainer_worker.evaluation_intake import events_of, one_job, run_intake

ROOT = bearer(token("root", [*USER_PERMISSIONS, Permission.SUPERADMIN]))
EVALUATION = re.compile(r"evaluations/[A-Za-z0-9_-]+")
PENDING, RUNNING = evaluations_pb2.EVALUATION_STATE_PENDING, evaluations_pb2.EVALUATION_STATE_RUNNING


async def publish(env: Env, name: str, who: Any = ALICE) -> trained_model_pb2.TrainedModel:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{env.app.server.port}") as channel:
        stub = trained_model_pb2_grpc.TrainedModelServiceStub(channel)
        request = trained_model_pb2.PublishTrainedModelRequest(name=name)
        return await stub.PublishTrainedModel(request, metadata=who)


async def refused(env: Env, name: str, who: Any = ALICE) -> str:
    code, details = await status_of(publish(env, name, who))
    assert code == grpc.StatusCode.FAILED_PRECONDITION, details
    assert "Evaluation(" not in details and "/tmp" not in details  # no reprs, no paths
    assert "'" not in details.replace("'s ", " ")  # only possessives ("the champion X's 0.4000")
    return details


async def champion_and_candidate(env: Env, family: str) -> tuple[str, str]:
    """A published champion trained on the READY version (test mAP 0.4) and a candidate of the same family
    trained on another dataset, so its own numbers are from another split."""
    champion = await env.register(test_map=0.4, family=family)
    assert (await publish(env, champion)).aliases == ["champion"]
    return champion, await env.register(test_map=0.9, dataset="datasets/other-survey", family=family)


async def gate_evaluations(env: Env, model: str) -> list[evaluations_pb2.Evaluation]:
    listed = await env.stub.ListEvaluations(
        evaluations_pb2.ListEvaluationsRequest(trained_model=model, dataset_version=env.version.name),
        metadata=ALICE,
    )
    return list(listed.evaluations)


async def test_publish_starts_the_evaluation_once_and_decides_on_its_number(env: Env) -> None:
    champion, candidate = await champion_and_candidate(env, "gate-auto")
    first, twin = await asyncio.gather(refused(env, candidate), refused(env, candidate))  # at once: one
    (started,) = set(EVALUATION.findall(first + twin))
    assert f"started {started} of {candidate} on {env.version.name} test split" in first
    assert "publish again when it is done" in first and champion in first and "0.9" not in first
    evaluation = await env.get(started)
    assert (evaluation.trained_model, evaluation.dataset_version, evaluation.split) == (
        candidate,
        env.version.name,
        "test",
    )
    assert evaluation.state == PENDING and evaluation.owner == "alice"

    again = await refused(env, candidate)  # the same evaluation is named, no second one
    assert EVALUATION.findall(again) == [started] and f"{started} of {candidate}" in again
    assert "is PENDING" in again and "started" not in again
    assert [e.name for e in await gate_evaluations(env, candidate)] == [started]

    # the worker takes the job: its claim makes it RUNNING, its result SUCCEEDED (its real adapters)
    js = env.h.nc.jetstream()
    async with one_job(js, env.h.names) as msg:
        evaluation_id, attempt = started.removeprefix("evaluations/"), msg.num_delivered
        await NatsEvaluationClaims(env.h.nc, env.h.names).claim(evaluation_id, attempt, "w-1")
        assert "is RUNNING" in await refused(env, candidate)
        reports = EvaluationEventPublisher(js, env.h.names, evaluation_id, attempt)
        await reports.completed(types_pb2.DetectionMetrics(bbox_map=0.35), [])
        await msg.ack()
    await env.wait_state(started, evaluations_pb2.EVALUATION_STATE_SUCCEEDED)

    decided = await refused(env, candidate)  # now on the numbers: 0.35 on the champion's split vs 0.40
    assert "0.3500" in decided and "0.4000" in decided and "tolerance" in decided
    assert not EVALUATION.findall(decided) and "0.9" not in decided
    forced = await env_publish_forced(env, candidate)
    assert forced.publish_decision.candidate_source == started
    decision = forced.publish_decision
    assert (decision.candidate_bbox_map, decision.champion_bbox_map) == (0.35, 0.4)
    assert [e.name for e in await gate_evaluations(env, candidate)] == [started]


async def env_publish_forced(env: Env, name: str) -> trained_model_pb2.TrainedModel:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{env.app.server.port}") as channel:
        stub = trained_model_pb2_grpc.TrainedModelServiceStub(channel)
        request = trained_model_pb2.PublishTrainedModelRequest(name=name, force=True)
        return await stub.PublishTrainedModel(request, metadata=ROOT)


async def test_a_failed_evaluation_is_named_and_another_started(env: Env) -> None:
    _, candidate = await champion_and_candidate(env, "gate-failed")
    (first,) = EVALUATION.findall(await refused(env, candidate))
    failure = types_pb2.Failure(kind=types_pb2.INTERNAL_ERROR, message="the GPU fell off the bus")
    js, first_id = env.h.nc.jetstream(), first.removeprefix("evaluations/")
    await EvaluationEventPublisher(js, env.h.names, first_id, 1).failed(failure)
    await env.wait_state(first, evaluations_pb2.EVALUATION_STATE_FAILED)

    # publishing needs models.publish only: the gate's evaluation is its own step, started for the caller
    publisher_only = bearer(token("alice", USER_PERMISSIONS - {Permission.CREATE_EVALUATIONS}))
    details = await refused(env, candidate, publisher_only)
    assert f"the latest one, {first}, FAILED (INTERNAL_ERROR: the GPU fell off the bus)" in details
    second = EVALUATION.findall(details)[-1]
    assert second != first and f"started {second} of {candidate}" in details
    assert (await env.get(second)).state == PENDING and (await env.get(second)).owner == "alice"
    assert sorted(e.name for e in await gate_evaluations(env, candidate)) == sorted([first, second])
    # a caller who may not publish starts nothing
    code, _ = await status_of(publish(env, candidate, bearer(token("alice", ["models.view"]))))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert len(await gate_evaluations(env, candidate)) == 2


async def test_an_evaluation_cancelled_while_pending_is_never_run(env: Env) -> None:
    model = await env.register()
    created = await env.create(model)
    await env.stub.CancelEvaluation(
        evaluations_pb2.CancelEvaluationRequest(name=created.name, reason="not needed"), metadata=ALICE
    )
    js, names, work = env.h.nc.jetstream(), env.h.names, env.h.app.settings.data_dir / "evaluation-work"
    claims = NatsEvaluationClaims(env.h.nc, names)  # trained_model's answer: refused
    intake = await run_intake(js, names, env.store, work, expect=1, claims=claims)
    assert intake.settlements == [Settlement.ACK]  # acked: it leaves the queue, never redelivered
    assert await events_of(js, names, created.name.removeprefix("evaluations/")) == []  # nothing ran
    after = await env.get(created.name)
    assert after.state == evaluations_pb2.EVALUATION_STATE_CANCELLED and after.worker_id == ""
    assert not (env.h.app.settings.data_dir / "evaluation-work" / "evaluations").exists()
