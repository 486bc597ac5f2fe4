"""`ravenctl models report MODEL --dataset-version V [--split S]` against the real trained_model and
training_run servers (SQLite and PostgreSQL, real NATS, READY dataset versions prepared by the worker's real
intake): one model evaluated on two versions (its run's test evaluation on the first, a worker-reported one on
the second, another on the first's val split) is reported on the version and split asked for, naming that
evaluation and its split sha256; a version/split without a succeeded evaluation exits 2 naming the
`ravenctl evaluations create` command to run (or the evaluation already running), without a traceback."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from common.proto.raven.v1 import evaluations_pb2, types_pb2
from services.trainer_worker.adapters.evaluation_jobs import EvaluationEventPublisher
from tests.integration.trained_model.evaluation_support import (  # noqa: F401 (fixtures)
    ALICE,
    Env,
    evaluation_env,
    make_harness,
    ravenctl,
    ready_version,
    trained_models,
)
from tests.integration.training_run.test_discovery_cli import logs_to_stderr  # noqa: F401

pytestmark = pytest.mark.usefixtures("logs_to_stderr")  # ravenctl's stdout stays its own
SUCCEEDED = evaluations_pb2.EVALUATION_STATE_SUCCEEDED


async def succeed(
    env: Env, model: str, version: str, split: str, bbox_map: float
) -> evaluations_pb2.Evaluation:
    """An evaluation created through the API and finished by the worker's real event publisher."""
    created = await env.create(model, version, split)
    publisher = EvaluationEventPublisher(
        env.h.nc.jetstream(), env.h.names, created.name.removeprefix("evaluations/"), 1
    )
    await publisher.started("w-report")
    metrics = types_pb2.DetectionMetrics(bbox_map=bbox_map, bbox_map_50=0.5, bbox_map_s=-1)
    metrics.per_class_ap.add(class_name="tire", ap=bbox_map, recommended_score_threshold=0.35)
    metrics.per_class_ap.add(class_name="bottle", ap=-1, recommended_score_threshold=-1)
    await publisher.completed(metrics, [])
    return await env.wait_state(created.name, SUCCEEDED)


async def report(env: Env, tmp_path: Path, model: str, *args: str) -> tuple[dict[str, object], str]:
    out = tmp_path / f"{len(list(tmp_path.iterdir()))}.html"
    result = await ravenctl(env, "-o", "json", "models", "report", model, "--out", str(out), *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), out.read_text(encoding="utf-8")


async def test_the_report_uses_the_evaluation_of_the_version_and_split_asked_for(
    env: Env, tmp_path: Path
) -> None:
    v1 = env.version
    v2 = await ready_version(env.h)
    assert v2.name != v1.name
    model = await env.register(test_map=0.4)  # its run's test evaluation on v1 is recorded
    on_v2 = await succeed(env, model, v2.name, "test", 0.123)
    on_v1_val = await succeed(env, model, v1.name, "val", 0.271)

    data, page = await report(env, tmp_path, model, "--dataset-version", v2.name)
    assert (data["evaluation"], data["dataset_version"], data["split"]) == (on_v2.name, v2.name, "test")
    assert data["split_sha256"] == v2.split_sha256 and data["full"] is False
    assert on_v2.name in page and v2.name in page and v2.split_sha256 in page
    assert "<td>0.123</td>" in page and "<td>0.400</td>" not in page
    assert "<tr><td>tire</td><td>0.123</td><td>0.350</td></tr>" in page
    assert "<tr><td>bottle</td><td>—</td><td>— (no true positive)</td></tr>" in page
    assert "only a model&#x27;s own artifacts can be downloaded" in page

    data, page = await report(env, tmp_path, model, "--dataset-version", v1.name)
    request = evaluations_pb2.ListEvaluationsRequest(
        trained_model=model, split="test", dataset_version=v1.name
    )
    (recorded,) = (await env.stub.ListEvaluations(request, metadata=ALICE)).evaluations
    assert data["evaluation"] == recorded.name and recorded.training_run
    assert "<td>0.400</td>" in page and "<td>0.123</td>" not in page and v1.split_sha256 in page

    data, page = await report(env, tmp_path, model, "--dataset-version", v1.name, "--split", "val")
    assert (data["evaluation"], data["split"]) == (on_v1_val.name, "val")
    assert "<td>0.271</td>" in page and f"{html.escape(v1.name)} / val split" in page


async def test_no_succeeded_evaluation_names_the_command_to_run(env: Env, tmp_path: Path) -> None:
    model = await env.register(test_map=0.4)
    out = tmp_path / "report.html"
    on_val = ("models", "report", model, "--dataset-version", env.version.name, "--split", "val")
    on_val += ("--out", str(out))
    missing = await ravenctl(env, *on_val)
    assert missing.exit_code == 2, missing.output
    text = " ".join(missing.output.split())
    assert f"{model} has no succeeded evaluation on {env.version.name} val split" in text
    assert f"ravenctl evaluations create {model} {env.version.name} --split val" in text
    assert "Traceback" not in missing.output and not out.exists()

    pending = await env.create(model, env.version.name, "val")
    waiting = await ravenctl(env, *on_val)
    assert waiting.exit_code == 2 and f"{pending.name} is PENDING" in " ".join(waiting.output.split())

    alone = await ravenctl(env, "models", "report", model, "--split", "val", "--out", str(out))
    assert alone.exit_code == 2 and "--split needs --dataset-version" in alone.output
