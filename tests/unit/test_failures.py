"""common.failures: the one FailureKind, its proto numbers and the classification of exceptions."""

from __future__ import annotations

import pickle

from common.failures import Failure, FailureKind, classify_exception, is_out_of_memory
from common.proto.raven.v1 import types_pb2


def test_names_and_numbers_are_the_proto_enum() -> None:
    assert [(k.value, int(k)) for k in FailureKind] == list(types_pb2.FailureKind.items())
    for name, number in types_pb2.FailureKind.items():
        assert FailureKind(name) is FailureKind.from_number(number) is FailureKind(number)
        assert FailureKind(name).number == number


def test_an_unknown_number_is_an_internal_error() -> None:
    assert FailureKind.from_number(99) is FailureKind.INTERNAL_ERROR
    assert FailureKind.from_number(-1) is FailureKind.INTERNAL_ERROR


def test_a_failure_pickles_across_the_training_child() -> None:
    failure = Failure(FailureKind.OUT_OF_MEMORY, "m", ("d",))
    assert pickle.loads(pickle.dumps(failure)) == failure


def test_classification_of_memory_and_build_errors() -> None:
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate"))
    assert is_out_of_memory(ValueError("mmap: cannot allocate memory")) and not is_out_of_memory(
        KeyError("boom")
    )
    oom = classify_exception(
        MemoryError(), stage="train", device="cpu", config={"train_dataloader": {"batch_size": 8}}
    )
    assert oom.kind is FailureKind.OUT_OF_MEMORY and "batch_size 8" in oom.message
    built = classify_exception(KeyError("type"), stage="build", device="cpu")
    assert built.kind is FailureKind.INVALID_CONFIG
