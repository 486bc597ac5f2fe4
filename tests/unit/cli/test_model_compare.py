"""`models compare` chooses evaluations on one dataset version and split, or refuses (pure logic)."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from common.proto.raven.v1 import evaluations_pb2 as pb
from services.cli.model_compare import NotComparable, choose, comparison_text


def evaluation(name: str, version: str, seconds: int, split: str = "test") -> pb.Evaluation:
    return pb.Evaluation(
        name=f"evaluations/{name}",
        dataset_version=version,
        split=split,
        create_time=Timestamp(seconds=seconds),
    )


V1, V2, V3 = "datasets/d/versions/1", "datasets/d/versions/2", "datasets/d/versions/3"


def test_the_newest_common_version_is_chosen_for_every_model() -> None:
    a = [evaluation("a3", V3, 30), evaluation("a2", V2, 20), evaluation("a1", V1, 10)]
    b = [evaluation("b2", V2, 25), evaluation("b1", V1, 5)]
    choice = choose(["m/a", "m/b"], [a, b], "", allow_different=False)
    assert choice.same_split and choice.on == f"{V2} / test"
    assert [e.name for e in choice.evaluations] == ["evaluations/a2", "evaluations/b2"]


def test_different_splits_are_refused_unless_allowed_and_then_marked() -> None:
    a, b = [evaluation("a3", V3, 30)], [evaluation("b1", V1, 5)]
    with pytest.raises(NotComparable, match="no evaluation on the same dataset version and split") as refused:
        choose(["m/a", "m/b"], [a, b], "", allow_different=False)
    assert f"m/a on {V3} / test" in str(refused.value) and "--allow-different-splits" in str(refused.value)
    choice = choose(["m/a", "m/b"], [a, b], "", allow_different=True)
    assert not choice.same_split and [e.name for e in choice.evaluations] == [
        "evaluations/a3",
        "evaluations/b1",
    ]
    data = {
        "same_split": False,
        "models": [
            {"name": "m/a", "dataset_version": V3, "dataset": "", "split": "test"},
            {"name": "m/b", "dataset_version": V1, "dataset": "", "split": "test"},
        ],
    }
    assert comparison_text(data).startswith("WARNING: different splits")


def test_a_model_without_an_evaluation_is_named() -> None:
    with pytest.raises(NotComparable, match="m/b has no succeeded evaluation on this split"):
        choose(["m/a", "m/b"], [[evaluation("a", V1, 1)], []], "", allow_different=True)


def test_compare_says_which_side_was_sliced() -> None:
    from rich.console import Console

    from common.inference_settings import record_to_proto
    from common.proto.raven.v1 import trained_model_pb2
    from services.cli.model_compare import comparison_data, comparison_tables

    tiled, plain = evaluation("t", V1, 2), evaluation("p", V1, 1)
    sliced = {"sliced": True, "tile_size": 640, "overlap": 128, "merge": "class-wise NMS",
              "merge_iou_threshold": 0.65}  # fmt: skip
    tiled.inference.CopyFrom(record_to_proto(sliced))
    plain.inference.CopyFrom(record_to_proto({"sliced": False, "max_per_image": 100}))
    models = [trained_model_pb2.TrainedModel(name=f"trainedModels/{n}", display_name=n) for n in ("t", "p")]
    choice = choose(["m/t", "m/p"], [[tiled], [plain]], "", allow_different=False)
    data = comparison_data(models, choice)
    assert [m["inference"]["sliced"] for m in data["models"]] == [True, False]
    text = comparison_text(data)
    assert "trainedModels/t: sliced: 640 px tiles, 128 px overlap" in text
    assert "trainedModels/p: full images" in text
    screen = Console(width=200, record=True)
    screen.print(*comparison_tables(data, width=200))
    inference_row = next(line for line in screen.export_text().splitlines() if "inference" in line)
    assert "sliced 640/128" in inference_row and "full image" in inference_row

    neither = choose(["m/t", "m/p"], [[plain], [plain]], "", allow_different=False)
    both_plain = comparison_data(models, neither)
    assert "sliced" not in comparison_text(both_plain)  # nothing to say when neither was sliced
