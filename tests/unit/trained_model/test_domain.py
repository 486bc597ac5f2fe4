"""Rules of the TrainedModel entity: publication gates, edits, deletion, names, validation."""

from datetime import UTC, datetime, timedelta

import pytest

from common.errors import Aborted, FailedPrecondition, InvalidArgument
from services.trained_model.domain.lineage import MAX_LINEAGE_DEPTH, effective_depth
from services.trained_model.domain.model import (
    Artifact,
    ArtifactKind,
    ModelInUse,
    PublicationGate,
    PublicationRefused,
    TrainedModel,
    next_version,
    parse_model_name,
    validate_class_names,
    validate_display_name,
    validate_gate_threshold,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make(bbox_map: float | None = 0.5, **kw) -> TrainedModel:
    ckpt = Artifact(ArtifactKind.CHECKPOINT, "runs/r1/best.pth", 10, "ab" * 32)
    return TrainedModel(
        id="m1",
        display_name="dumps",
        version=1,
        owner="alice",
        checkpoint=ckpt,
        create_time=T0,
        update_time=T0,
        bbox_map=bbox_map,
        **kw,
    )


def test_publish_records_who_and_when_and_bumps_etag() -> None:
    model = make()
    etag = model.etag
    model.publish(PublicationGate(), by="bob", now=T0 + timedelta(seconds=5))
    assert (model.published, model.published_by, model.publish_time) == (
        True,
        "bob",
        T0 + timedelta(seconds=5),
    )
    assert model.etag != etag


def test_publish_twice_is_a_no_op() -> None:
    model = make()
    model.publish(PublicationGate(), by="bob", now=T0)
    revision = model.revision
    model.publish(PublicationGate(min_bbox_map=0.99), by="carol", now=T0 + timedelta(1))
    assert model.revision == revision and model.published_by == "bob"


@pytest.mark.parametrize("score", [0.29, None])
def test_min_map_gate_refuses_low_or_unevaluated_models(score: float | None) -> None:
    model = make(bbox_map=score)
    with pytest.raises(PublicationRefused, match=r"min_bbox_map|below"):
        model.publish(PublicationGate(min_bbox_map=0.3), by="bob", now=T0)
    assert not model.published


def test_min_map_gate_passes_equal_score() -> None:
    model = make(bbox_map=0.3)
    model.publish(PublicationGate(min_bbox_map=0.3), by="bob", now=T0)
    assert model.published


def test_better_than_published_gate() -> None:
    worse = make(bbox_map=0.4)
    with pytest.raises(PublicationRefused, match="worse than the published"):
        worse.publish(PublicationGate(require_better=True, best_published_map=0.41), by="b", now=T0)
    better = make(bbox_map=0.42)
    better.publish(PublicationGate(require_better=True, best_published_map=0.41), by="b", now=T0)
    assert better.published
    first = make(bbox_map=0.1)  # nothing published yet under that name: the gate has nothing to compare with
    first.publish(PublicationGate(require_better=True, best_published_map=None), by="b", now=T0)
    assert first.published


def test_force_skips_both_gates() -> None:
    model = make(bbox_map=0.01)
    model.publish(
        PublicationGate(min_bbox_map=0.9, require_better=True, best_published_map=0.8, force=True),
        by="root",
        now=T0,
    )
    assert model.published


def test_unpublish_clears_publication() -> None:
    model = make()
    model.publish(PublicationGate(), by="bob", now=T0)
    model.unpublish(now=T0)
    assert (model.published, model.published_by, model.publish_time) == (False, "", None)


def test_edit_validates_and_reports_rename() -> None:
    model = make()
    assert model.edit(display_name="dumps-v2", description=None, now=T0) is True
    assert model.edit(display_name=None, description="better", now=T0) is False
    with pytest.raises(InvalidArgument) as caught:
        model.edit(display_name=" ", description="x" * 5000, now=T0)
    assert {v.field for v in caught.value.violations} == {
        "trained_model.display_name",
        "trained_model.description",
    }
    assert model.display_name == "dumps-v2"


def test_stale_etag_is_aborted() -> None:
    model = make()
    model.check_etag(model.etag)
    model.check_etag("")
    with pytest.raises(Aborted):
        model.check_etag('"999"')


def test_delete_rules() -> None:
    model = make()
    model.ensure_deletable(descendants=0, active_runs=False)
    with pytest.raises(ModelInUse, match="base model of 2"):
        model.ensure_deletable(descendants=2, active_runs=False)
    with pytest.raises(FailedPrecondition, match="running training run"):
        model.ensure_deletable(descendants=0, active_runs=True)


@pytest.mark.parametrize(
    "name", ["", "trainedModels/", "models/x", "trainedModels/a/b", "trainedModels/../x"]
)
def test_bad_model_names_are_invalid_arguments(name: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_model_name(name)
    assert caught.value.violations[0].field == "name"


def test_good_model_name() -> None:
    assert parse_model_name("trainedModels/0b5e-11") == "0b5e-11"


def test_validation_helpers() -> None:
    assert validate_display_name("ok") == []
    assert validate_display_name("bad\nname")
    assert validate_class_names([]) and validate_class_names(["a", "a"]) and validate_class_names(["", "b"])
    assert validate_class_names(["dump", "tyre"]) == []
    with pytest.raises(InvalidArgument):
        validate_gate_threshold(1.5)
    assert next_version(None) == 1 and next_version(4) == 5
    assert effective_depth(0) == MAX_LINEAGE_DEPTH and effective_depth(2) == 2


def test_artifact_lookup_by_kind() -> None:
    log = Artifact(ArtifactKind.LOG, "runs/r1/train.log", 3, "cd" * 32)
    model = make(artifacts=[log])
    assert model.artifact(ArtifactKind.CHECKPOINT) is model.checkpoint
    assert model.artifact(ArtifactKind.LOG) is log
    assert model.artifact(ArtifactKind.CURVES) is None
    assert model.artifact_keys() == ["runs/r1/best.pth", "runs/r1/train.log"]
    assert model.checkpoint.filename == "best.pth"
