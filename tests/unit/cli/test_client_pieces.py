"""Pure parts of the client: backoff bounds, terminal events, error decoding from trailing metadata."""

from __future__ import annotations

import random

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from common.client import RavenError, RetryPolicy, is_terminal_event
from common.client.retry import Failures
from common.proto.raven.v1 import events_pb2, training_run_pb2, types_pb2


def test_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, multiplier=2.0, rng=random.Random(3))
    for retry, bound in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        samples = [policy.backoff(retry) for _ in range(200)]
        assert all(0 <= s <= bound for s in samples)
        assert max(samples) > bound * 0.8, "full jitter spreads over the whole window"
        assert len(set(samples)) > 150


async def test_failures_sleep_between_tries_give_up_at_max_attempts_and_reset_on_progress() -> None:
    failures = Failures(RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.001))
    assert await failures.failed() and await failures.failed()
    assert not await failures.failed() and failures.count == 3  # the third failure is the last try
    failures.reset()
    assert await failures.failed() and failures.count == 1
    assert not await Failures(RetryPolicy(max_attempts=1)).failed()  # NO_RETRY: the first failure ends it


def test_a_policy_without_jitter_sleeps_the_bound_itself() -> None:
    policy = RetryPolicy(max_attempts=6, initial_backoff=0.25, max_backoff=5.0, jitter=False)
    assert [policy.backoff(n) for n in range(1, 8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def change(to_state: int) -> training_run_pb2.WatchTrainingRunResponse:
    event = events_pb2.RunEvent(state_changed=events_pb2.StateChanged(to_state=to_state))
    return training_run_pb2.WatchTrainingRunResponse(event=event)


def test_only_state_changes_into_a_terminal_state_end_a_watch() -> None:
    assert all(
        is_terminal_event(change(s)) for s in (types_pb2.SUCCEEDED, types_pb2.FAILED, types_pb2.CANCELLED)
    )
    assert not any(
        is_terminal_event(change(s)) for s in (types_pb2.PENDING, types_pb2.RUNNING, types_pb2.CANCELLING)
    )
    failed_payload = events_pb2.RunEvent(failed=events_pb2.RunFailed())
    assert not is_terminal_event(training_run_pb2.WatchTrainingRunResponse(event=failed_payload))


class FakeCallError(grpc.RpcError):
    """The shape grpc gives a failed call: code(), details(), trailing_metadata()."""

    def __init__(self, code: grpc.StatusCode, details: str, status: status_pb2.Status | None) -> None:
        self._code, self._details = code, details
        self._trailing = (("grpc-status-details-bin", status.SerializeToString()),) if status else ()

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return self._trailing


def test_bad_request_details_become_field_violations() -> None:
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field="dataset", description="escapes the dataset root"
                ),
            ]
        )
    )
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="bad", details=[detail])
    error = RavenError.from_rpc_error(FakeCallError(grpc.StatusCode.INVALID_ARGUMENT, "bad", status))
    assert (error.code, error.message) == (grpc.StatusCode.INVALID_ARGUMENT, "bad")
    assert [(v.field, v.description) for v in error.violations] == [("dataset", "escapes the dataset root")]
    assert str(error) == "INVALID_ARGUMENT: bad"


def test_missing_or_inconsistent_details_decode_to_no_violations() -> None:
    plain = RavenError.from_rpc_error(FakeCallError(grpc.StatusCode.NOT_FOUND, "gone", None))
    assert plain.violations == [] and plain.message == "gone"
    mismatched = status_pb2.Status(code=code_pb2.INTERNAL, message="x")
    odd = RavenError.from_rpc_error(FakeCallError(grpc.StatusCode.NOT_FOUND, "gone", mismatched))
    assert odd.code == grpc.StatusCode.NOT_FOUND and odd.violations == []
