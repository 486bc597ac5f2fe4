"""Step helpers with plain inputs/outputs: failure classification, split fractions, completed payload."""

from __future__ import annotations

import pytest

from common.mmdet_config import ConfigInvalid, FieldViolation
from common.proto.raven.v1 import types_pb2
from services.trainer_worker.domain.problems import DatasetInvalid
from services.trainer_worker.domain.split import SplitFractions
from services.trainer_worker.service_layer.results import classify_failure, split_fractions


def test_invalid_dataset_keeps_message_and_details() -> None:
    failure = classify_failure(
        DatasetInvalid("dataset 'x' is invalid (1 problem)", ["annotation 3: unknown image 9"])
    )
    assert failure.kind == types_pb2.INVALID_DATASET
    assert failure.message == "dataset 'x' is invalid (1 problem)"
    assert list(failure.details) == ["annotation 3: unknown image 9"]


def test_invalid_config_names_the_fields() -> None:
    exc = ConfigInvalid([FieldViolation("training_run.hyperparameters.epochs", "must be 1..500")])
    failure = classify_failure(exc)
    assert failure.kind == types_pb2.INVALID_CONFIG
    assert list(failure.details) == ["training_run.hyperparameters.epochs: must be 1..500"]


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")])
def test_out_of_memory_says_what_to_lower(exc: BaseException) -> None:
    failure = classify_failure(exc)
    assert failure.kind == types_pb2.OUT_OF_MEMORY
    assert "batch_size" in failure.message


def test_anything_else_is_internal_with_the_error_named() -> None:
    failure = classify_failure(KeyError("boom"))
    assert failure.kind == types_pb2.INTERNAL_ERROR
    assert "KeyError" in failure.message and "boom" in failure.message


def test_split_fractions_default_and_custom() -> None:
    assert split_fractions(types_pb2.Hyperparameters()) == SplitFractions()
    custom = split_fractions(types_pb2.Hyperparameters(train_fraction=0.8, val_fraction=0.2))
    assert (custom.train, custom.val, custom.test) == (0.8, 0.2, 0.0)
    with pytest.raises(ValueError):
        split_fractions(types_pb2.Hyperparameters(train_fraction=0.9, val_fraction=0.3))
