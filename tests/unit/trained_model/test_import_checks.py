"""The checkpoint head / class count rule and page tokens of trained_model."""

import pytest

from common.errors import InvalidArgument
from services.trained_model.adapters.model_import import head_class_problems
from services.trained_model.adapters.repository import Cursor
from services.trained_model.service_layer import page_tokens


def test_head_class_count_rule() -> None:
    rtmdet = {f"bbox_head.rtm_cls.{i}.weight": (3, 96, 1, 1) for i in range(3)}
    assert head_class_problems({**rtmdet, "rpn_head.rpn_cls.weight": (9, 256, 1, 1)}, 3) == []
    assert head_class_problems(rtmdet, 4)
    faster = {"roi_head.bbox_head.fc_cls.weight": (4, 1024), "rpn_head.rpn_cls.weight": (3, 256, 1, 1)}
    assert head_class_problems(faster, 3) == []
    assert head_class_problems(faster, 5)
    retina = {"bbox_head.retina_cls.weight": (27, 256, 3, 3)}  # 9 anchors x 3 classes
    assert head_class_problems(retina, 3) == [] and head_class_problems(retina, 4)
    assert head_class_problems({"backbone.conv1.weight": (64, 3, 7, 7)}, 3)  # no head at all


def test_page_tokens_round_trip_and_reject_tampering() -> None:
    token = page_tokens.encode(Cursor("2026-01-01T00:00:00+00:00", "m1"), "q1")
    assert page_tokens.decode(token, "q1") == Cursor("2026-01-01T00:00:00+00:00", "m1")
    assert page_tokens.decode("", "q1") is None
    for bad, fp in [(token, "other-query"), ("not-a-token", "q1"), (token[:-3], "q1")]:
        with pytest.raises(InvalidArgument) as caught:
            page_tokens.decode(bad, fp)
        assert caught.value.violations[0].field == "page_token"
