"""The champion gate and aliases against the real trained_model server (SQLite and PostgreSQL), over gRPC
and through ravenctl: a worse model is refused with both numbers, force publishes and records it, a gated
publish moves champion, an alias is held by one model of a family, a candidate from another dataset version
needs an evaluation on the champion's test split (one the gate cannot start when the version is gone)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import field_mask_pb2
from typer.testing import CliRunner, Result

from common.auth import USER_PERMISSIONS, Permission
from common.proto.raven.v1 import trained_model_pb2 as pb
from services.cli.main import app
from services.trained_model.domain.evaluation import Evaluation, EvaluationState
from services.trained_model.entrypoints.convert import register_command
from services.trained_model.service_layer.registration import Registered
from tests.helpers import token
from tests.integration.trained_model.api_helpers import ALICE, BOB, ROOT, rpc_error
from tests.integration.trained_model.conftest import Env

VERSION = "datasets/dumps/versions/1"
SPLIT = hashlib.sha256(b"split of version 1").hexdigest()
Decision = pb.PublishDecision


async def trained(
    env: Env,
    family: str,
    test_map: float,
    *,
    version: str = VERSION,
    split: str = SPLIT,
    owner: str = "alice",
) -> str:
    """A model registered from a run on a dataset version with its test split metrics."""
    event = env.completed_event(uuid.uuid4().hex[:12], display_name=family, owner=owner)
    event.completed.dataset, event.completed.split_sha256 = version, split
    event.completed.dataset_version = version
    event.completed.evaluation.test.bbox_map = test_map
    outcome = await env.app.registration.register_completed(register_command(event))
    assert isinstance(outcome, Registered), outcome
    return outcome.model.name


async def publish(env: Env, name: str, who: Any = ALICE, force: bool = False) -> pb.TrainedModel:
    return await env.stub.PublishTrainedModel(
        pb.PublishTrainedModelRequest(name=name, force=force), metadata=who
    )


async def get(env: Env, name: str) -> pb.TrainedModel:
    return await env.stub.GetTrainedModel(pb.GetTrainedModelRequest(name=name), metadata=ALICE)


async def ravenctl(env: Env, tok: str, *args: str) -> Result:
    loop = asyncio.get_running_loop()

    def on_test_loop(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    base = ["--training-run-addr", "127.0.0.1:1", "--trained-model-addr", f"127.0.0.1:{env.app.server.port}",
            "--token", tok]  # fmt: skip
    return await asyncio.to_thread(
        CliRunner().invoke, app, [*base, *args], obj=on_test_loop, env={"RAVEN_TOKEN": None}
    )


async def test_worse_is_refused_with_both_numbers_force_publishes_and_champion_moves(env: Env) -> None:
    family = f"gate-{uuid.uuid4().hex[:6]}"
    first = await trained(env, family, 0.50)
    published = await publish(env, first)
    assert published.aliases == ["champion"]
    assert published.publish_decision.outcome == Decision.OUTCOME_NO_CHAMPION

    worse = await trained(env, family, 0.40)
    error = await rpc_error(publish(env, worse))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "0.4000" in error.details() and "0.5000" in error.details() and first in error.details()
    assert not (await get(env, worse)).published and (await get(env, first)).aliases == ["champion"]

    within = await trained(env, family, 0.497)  # lower, but within the tolerance (0.005)
    passed = await publish(env, within)
    assert passed.publish_decision.outcome == Decision.OUTCOME_PASSED and passed.aliases == ["champion"]
    d = passed.publish_decision
    assert (d.candidate_bbox_map, d.champion_bbox_map, d.champion) == (0.497, 0.5, first)
    assert (d.dataset_version, d.split_sha256, d.tolerance) == (VERSION, SPLIT, 0.005)
    assert d.decided_by == "alice" and d.decide_time.seconds > 0
    assert (await get(env, first)).aliases == []  # champion moved; the old one stays published

    denied = await rpc_error(publish(env, worse, force=True))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    forced = await publish(env, worse, ROOT, force=True)
    assert forced.published and forced.aliases == ["champion"]
    assert forced.publish_decision.outcome == Decision.OUTCOME_FORCED
    assert (forced.publish_decision.candidate_bbox_map, forced.publish_decision.champion_bbox_map) == (
        0.40,
        0.497,
    )
    assert "0.4000" in forced.publish_decision.message and forced.publish_decision.decided_by == "root"
    stored = await get(env, worse)  # the audit is stored, not only answered
    assert stored.publish_decision == forced.publish_decision and stored.aliases == ["champion"]

    shown = await ravenctl(env, token("alice"), "models", "get", worse)
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "FORCED" in text and "0.4000" in text and "0.4970" in text and "champion" in text

    unpublished = await env.stub.UnpublishTrainedModel(
        pb.UnpublishTrainedModelRequest(name=worse), metadata=ALICE
    )
    assert unpublished.aliases == [] and not unpublished.published  # a withdrawn model is no champion
    assert [(await get(env, m)).aliases for m in (first, within, worse)] == [[], [], []]  # none dangles
    after = await publish(env, await trained(env, family, 0.10))  # gated against the champion now: none
    assert after.publish_decision.outcome == Decision.OUTCOME_NO_CHAMPION and after.aliases == ["champion"]


async def test_a_candidate_of_another_dataset_version_needs_an_evaluation_on_the_champions_split(
    env: Env,
) -> None:
    family = f"cross-{uuid.uuid4().hex[:6]}"
    champion = await trained(env, family, 0.3)
    await publish(env, champion)
    other = await trained(env, family, 0.9, version="datasets/dumps/versions/2", split="7" * 64)
    error = await rpc_error(publish(env, other))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"an evaluation of {other} on the TEST split of {VERSION}" in error.details()
    assert "0.9" not in error.details()  # its own number is from another split: never compared
    # the gate would start that evaluation (test_publish_gate_evaluations.py); this version is gone
    assert f"none can be started: dataset version {VERSION} does not exist" in error.details()

    result = await ravenctl(env, token("root", [*USER_PERMISSIONS, Permission.SUPERADMIN]),
                            "models", "publish", other, "--force")  # fmt: skip
    assert result.exit_code == 0, result.output
    model = await get(env, other)
    assert model.published and model.publish_decision.outcome == Decision.OUTCOME_FORCED
    assert model.publish_decision.candidate_source == "" and "evaluation" in model.publish_decision.message
    assert "FORCED" in " ".join(result.output.split())


async def evaluated(env: Env, model: str, bbox_map: float, *, split: str = SPLIT, seconds: int = 0) -> str:
    """A SUCCEEDED evaluation of ``model`` on VERSION's test split, as the EvaluationService records one."""
    evaluation_id = uuid.uuid4().hex
    now = datetime.now(UTC) + timedelta(seconds=seconds)
    record = Evaluation(
        id=evaluation_id, model_id=model.removeprefix("trainedModels/"), dataset_version=VERSION,
        split="test", owner="alice", create_time=now, update_time=now, state=EvaluationState.SUCCEEDED,
        split_sha256=split, metrics={"bbox_map": bbox_map}, end_time=now, job_published=True, attempt=1,
    )  # fmt: skip
    async with env.app.registry.uow() as uow:
        await uow.evaluations.add(record)
        await uow.commit()
    return f"evaluations/{evaluation_id}"


async def test_an_evaluation_on_the_champions_split_decides_for_another_version(env: Env) -> None:
    family = f"evald-{uuid.uuid4().hex[:6]}"
    champion = await trained(env, family, 0.30)
    await publish(env, champion)
    other = await trained(env, family, 0.9, version="datasets/dumps/versions/2", split="7" * 64)
    await evaluated(env, other, 0.99, split="8" * 64)  # another split of that version name: never used
    low = await evaluated(env, other, 0.25, seconds=1)
    error = await rpc_error(publish(env, other))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "0.2500" in error.details() and "0.3000" in error.details() and "0.9" not in error.details()

    better = await evaluated(env, other, 0.32, seconds=2)  # the newest evaluation on that split counts
    published = await publish(env, other)
    d = published.publish_decision
    assert d.outcome == Decision.OUTCOME_PASSED and published.aliases == ["champion"]
    assert (d.candidate_bbox_map, d.champion_bbox_map, d.candidate_source) == (0.32, 0.30, better)
    assert low != better and d.dataset_version == VERSION and d.split_sha256 == SPLIT


async def test_an_alias_is_held_by_one_model_of_a_family(env: Env) -> None:
    family = f"alias-{uuid.uuid4().hex[:6]}"
    a, b = await trained(env, family, 0.5), await trained(env, family, 0.6)
    other_family = await trained(env, f"{family}-x", 0.5)
    for name in (a, other_family):
        model = await env.stub.SetModelAlias(
            pb.SetModelAliasRequest(name=name, alias="staging"), metadata=ALICE
        )
        assert model.aliases == ["staging"]
    moved = await env.stub.SetModelAlias(pb.SetModelAliasRequest(name=b, alias="staging"), metadata=ALICE)
    assert moved.aliases == ["staging"]
    assert (await get(env, a)).aliases == []  # the family's alias moved to b
    assert (await get(env, other_family)).aliases == ["staging"]  # another family keeps its own

    result = await ravenctl(env, token("alice"), "models", "alias", "set", a, "canary")
    assert result.exit_code == 0, result.output
    assert (await get(env, a)).aliases == ["canary"]
    result = await ravenctl(env, token("alice"), "models", "alias", "remove", a, "canary")
    assert result.exit_code == 0, result.output
    assert (await get(env, a)).aliases == []

    for alias in ("champion", "Bad Alias"):
        error = await rpc_error(
            env.stub.SetModelAlias(pb.SetModelAliasRequest(name=a, alias=alias), metadata=ALICE)
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, alias
    unchanged = await env.stub.DeleteModelAlias(
        pb.DeleteModelAliasRequest(name=a, alias="staging"), metadata=ALICE
    )  # a does not hold it (b does): nothing changes, b keeps it
    assert unchanged.aliases == [] and (await get(env, b)).aliases == ["staging"]
    bobs = await rpc_error(
        env.stub.SetModelAlias(pb.SetModelAliasRequest(name=b, alias="mine"), metadata=BOB)
    )
    assert bobs.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)

    renamed = await env.stub.UpdateTrainedModel(
        pb.UpdateTrainedModelRequest(
            trained_model=pb.TrainedModel(name=b, display_name=f"{family}-renamed"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
        metadata=ALICE,
    )
    assert renamed.aliases == []  # it left the family and its aliases
    assert (await get(env, b)).aliases == []
