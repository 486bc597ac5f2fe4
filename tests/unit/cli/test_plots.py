from pathlib import Path

from common.proto.raven.v1 import types_pb2
from services.cli.plots import plot_epoch_history, validated_epochs


def history() -> list[types_pb2.EpochMetrics]:
    return [
        types_pb2.EpochMetrics(epoch=e, bbox_map=(e / 10 if e % 5 == 0 else -1.0), train_loss=1 / e)
        for e in range(1, 11)
    ]


def test_only_validated_epochs_are_plotted_as_scores() -> None:
    assert [h.epoch for h in validated_epochs(history())] == [5, 10]


def test_history_plot_is_written(tmp_path: Path) -> None:
    out = tmp_path / "curves.png"
    assert plot_epoch_history(history(), out, "t") == 10
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
