"""The test split's per-class recommended score thresholds travel from RunCompleted through the registrar
(real NATS, SQLite and PostgreSQL) onto the TrainedModel, and `ravenctl models get` shows them."""

from __future__ import annotations

import io
import uuid

from rich.console import Console

from common.proto.raven.v1 import trained_model_pb2, types_pb2
from services.cli.render import model_detail
from tests.helpers import bearer, token
from tests.integration.trained_model.conftest import Env
from tests.integration.trained_model.test_registrar import replies


async def test_recommended_score_thresholds_arrive_on_the_model(env: Env, js) -> None:
    run_id = uuid.uuid4().hex[:12]
    event = env.completed_event(run_id, display_name=f"thr-{run_id}")
    test = event.completed.evaluation.test
    test.bbox_map = 0.4
    test.per_class_ap.add(class_name="dump", ap=0.4, recommended_score_threshold=0.4375)
    test.per_class_ap.add(class_name="bin", ap=-1.0, recommended_score_threshold=-1.0)  # no true positive
    analysis_kinds = [types_pb2.PREDICTIONS, types_pb2.EVALUATION_ANALYSIS, types_pb2.CONFUSION_MATRIX,
                      types_pb2.PR_CURVES]  # fmt: skip
    for kind in analysis_kinds:
        stored = env.store.put_bytes(f"runs/{run_id}/{types_pb2.ArtifactKind.Name(kind)}", b"analysis")
        event.completed.artifacts.add(
            kind=kind, uri=stored.key, size_bytes=stored.size_bytes, sha256=stored.sha256
        )
    await js.publish(env.names.run_events_subject(run_id), event.SerializeToString())
    events = await replies(js, env, run_id, "model_registered")
    registered = next(e for e in events if e.WhichOneof("payload") == "model_registered")

    model = await env.stub.GetTrainedModel(
        trained_model_pb2.GetTrainedModelRequest(
            name=f"trainedModels/{registered.model_registered.trained_model_id}"
        ),
        metadata=bearer(token("alice")),
    )
    thresholds = {
        c.class_name: c.recommended_score_threshold
        for c in model.evaluation.test.per_class_ap
        if c.HasField("recommended_score_threshold")
    }
    assert thresholds == {"dump": 0.4375, "bin": -1.0}
    assert model.evaluation.test.bbox_map == 0.4
    assert [a.kind for a in model.artifacts] == [types_pb2.LOG, *analysis_kinds]
    assert not model.evaluation.val.per_class_ap[0].HasField("recommended_score_threshold")

    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(*model_detail(model))
    shown = out.getvalue()
    assert "SCORE THRESHOLD" in shown and "per class (test)" in shown
    dump_row = next(line for line in shown.splitlines() if "dump" in line and "0.438" in line)
    assert "0.400" in dump_row
    bin_row = next(line for line in shown.splitlines() if "bin" in line and "n/a" in line)
    assert bin_row.count("n/a") == 2  # AP and threshold are both not measurable
