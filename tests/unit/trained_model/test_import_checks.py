"""The checkpoint head / class count rule of trained_model imports."""

from services.trained_model.adapters.model_import import head_class_problems


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
