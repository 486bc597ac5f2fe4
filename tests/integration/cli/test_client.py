"""RavenClient against real in-process gRPC servers (real auth and error encoding, scripted faults)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import grpc
import pytest

from common.auth import TokenVerifier
from common.client import IntegrityError, RavenClient, RavenError, RetryPolicy
from common.grpc_server import ServiceRegistration, create_server
from common.proto.raven.v1 import trained_model_pb2, training_run_pb2, training_run_pb2_grpc, types_pb2
from tests.helpers import JWT_SECRET, token
from tests.integration.cli.fake_trained_models import FakeTrainedModels, StoredArtifact
from tests.integration.cli.fake_training_runs import FakeTrainingRuns, scripted_events
from tests.integration.cli.fakes import FakeStack, start_servers

FAST = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05)


def client_for(stack: FakeStack, **kwargs: object) -> RavenClient:
    options: dict = {"token": token(), "retry": FAST, "timeout": 5.0, **kwargs}
    return RavenClient(stack.training_run_addr, stack.trained_model_addr, **options)


def a_run(
    stack: FakeStack, run_id: str = "r1", state: int = types_pb2.RUNNING
) -> training_run_pb2.TrainingRun:
    return stack.runs.add(
        training_run_pb2.TrainingRun(name=f"trainingRuns/{run_id}", display_name=run_id, state=state)
    )


async def test_read_is_retried_on_unavailable_until_it_succeeds(stack: FakeStack) -> None:
    a_run(stack)
    stack.runs.faults.fail_first["GetTrainingRun"] = 2
    async with client_for(stack) as client:
        run = await client.get_run("trainingRuns/r1")
    assert run.display_name == "r1"
    assert stack.runs.faults.calls["GetTrainingRun"] == 3


async def test_read_gives_up_after_max_attempts(stack: FakeStack) -> None:
    a_run(stack)
    stack.runs.faults.fail_first["GetTrainingRun"] = 10
    async with client_for(stack) as client:
        with pytest.raises(RavenError) as caught:
            await client.get_run("trainingRuns/r1")
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert "restarting" in caught.value.message
    assert stack.runs.faults.calls["GetTrainingRun"] == FAST.max_attempts


async def test_create_is_retried_with_one_generated_request_id(stack: FakeStack) -> None:
    stack.runs.faults.fail_first["CreateTrainingRun"] = 2
    async with client_for(stack) as client:
        run = await client.create_run(training_run_pb2.TrainingRun(display_name="x", dataset="d"))
        again = await client.create_run(training_run_pb2.TrainingRun(display_name="y"), request_id="mine")
    first_three = stack.runs.request_ids[:3]  # two UNAVAILABLE, then created
    assert len(set(first_three)) == 1 and first_three[0], (
        "every retry of one logical call reuses its request_id"
    )
    assert stack.runs.request_ids[3] == "mine"
    assert run.name == "trainingRuns/r1" and again.name == "trainingRuns/r2"
    assert len(stack.runs.runs) == 2


async def test_non_idempotent_call_is_not_retried(stack: FakeStack) -> None:
    a_run(stack)
    stack.runs.faults.fail_first["CancelTrainingRun"] = 1
    async with client_for(stack) as client:
        with pytest.raises(RavenError) as caught:
            await client.cancel_run("trainingRuns/r1")
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert stack.runs.faults.calls["CancelTrainingRun"] == 1


async def test_every_call_carries_the_default_deadline(stack: FakeStack) -> None:
    a_run(stack)
    async with client_for(stack, timeout=3.0) as client:
        await client.get_run("trainingRuns/r1")
        await client.list_runs()
    for method in ("GetTrainingRun", "ListTrainingRuns"):
        remaining = stack.runs.faults.time_remaining[method][0]
        assert remaining is not None and 2.0 < remaining <= 3.1  # grpc rounds deadlines up a little


async def test_deadline_exceeded_is_retried_for_reads_only(stack: FakeStack) -> None:
    a_run(stack, state=types_pb2.PENDING)
    stack.runs.faults.delay["GetTrainingRun"] = 1.0
    stack.runs.faults.delay["CancelTrainingRun"] = 1.0
    async with client_for(
        stack, timeout=0.2, retry=RetryPolicy(max_attempts=2, initial_backoff=0.01)
    ) as client:
        with pytest.raises(RavenError) as read:
            await client.get_run("trainingRuns/r1")
        with pytest.raises(RavenError) as write:
            await client.cancel_run("trainingRuns/r1", timeout=0.2)
    assert read.value.code == write.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert stack.runs.faults.calls["GetTrainingRun"] == 2
    assert stack.runs.faults.calls["CancelTrainingRun"] == 1


async def test_field_violations_are_decoded(stack: FakeStack) -> None:
    bad = training_run_pb2.TrainingRun(hyperparameters=types_pb2.Hyperparameters(epochs=900))
    async with client_for(stack) as client:
        with pytest.raises(RavenError) as caught:
            await client.create_run(bad)
    error = caught.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == [
        "training_run.display_name",
        "training_run.hyperparameters.epochs",
    ]
    assert error.violations[1].description == "must be in 1..500"
    assert stack.runs.faults.calls["CreateTrainingRun"] == 1


async def test_missing_token_is_unauthenticated_and_not_retried(stack: FakeStack) -> None:
    async with client_for(stack, token=None) as client:
        with pytest.raises(RavenError) as caught:
            await client.get_run("trainingRuns/r1")
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert stack.runs.faults.calls["GetTrainingRun"] == 0


async def test_iter_runs_follows_page_tokens(stack: FakeStack) -> None:
    for i in range(7):
        a_run(stack, f"r{i}")
    async with client_for(stack) as client:
        names = [run.name async for run in client.iter_runs(page_size=3)]
    assert names == [f"trainingRuns/r{i}" for i in range(7)]
    assert stack.runs.faults.calls["ListTrainingRuns"] == 3


async def test_watch_reconnects_from_last_token_without_duplicates(stack: FakeStack) -> None:
    run = a_run(stack)
    stack.runs.events[run.name] = scripted_events(run, iterations=6)  # sequences 1..9, 9 terminal
    stack.runs.watch_drops = [("abort", 3), ("end", 4)]
    async with client_for(stack) as client:
        seen = [r.event.sequence async for r in client.watch(run.name)]
    assert seen == list(range(1, 10))
    assert stack.runs.watch_tokens == ["", "3", "7"]


async def test_watch_survives_a_server_restart(tmp_path: Path) -> None:
    """A real dropped connection: the server stops mid-stream and comes back on the same port."""
    runs, models = FakeTrainingRuns(), FakeTrainedModels()
    first, servers = await start_servers(runs, models)
    port = servers[0].port
    run = runs.add(training_run_pb2.TrainingRun(name="trainingRuns/r1", state=types_pb2.RUNNING))
    runs.events[run.name] = scripted_events(run, iterations=4)
    runs.watch_drops = [("hold", 3)]
    seen: list[int] = []
    try:
        async with client_for(
            first, retry=RetryPolicy(max_attempts=20, initial_backoff=0.05, max_backoff=0.2)
        ) as c:
            async for response in c.watch(run.name):
                seen.append(response.event.sequence)
                if len(seen) == 3:
                    await servers[0].server.stop(0)
                    servers[0] = await create_server(
                        [
                            ServiceRegistration(
                                training_run_pb2_grpc.add_TrainingRunServiceServicer_to_server,
                                runs,
                                "raven.v1.TrainingRunService",
                            )
                        ],
                        TokenVerifier(secret=JWT_SECRET),
                        address=f"127.0.0.1:{port}",
                    )
    finally:
        for server in servers:
            await server.server.stop(0)
    assert seen == list(range(1, 8))
    assert runs.watch_tokens == ["", "3"]


async def test_watch_skips_events_replayed_inclusively(stack: FakeStack) -> None:
    run = a_run(stack)
    stack.runs.events[run.name] = scripted_events(run, iterations=4)
    stack.runs.replay_inclusive = True
    stack.runs.watch_drops = [("abort", 2)]
    async with client_for(stack) as client:
        seen = [r.event.sequence async for r in client.watch(run.name)]
    assert seen == list(range(1, 8))


async def test_watch_starts_after_the_given_token_and_stops_at_the_terminal_event(stack: FakeStack) -> None:
    run = a_run(stack)
    events = scripted_events(run, iterations=4, final=types_pb2.FAILED)
    stack.runs.events[run.name] = [
        *events,
        *scripted_events(run)[:1],
    ]  # anything after the terminal is ignored
    async with client_for(stack) as client:
        seen = [r async for r in client.watch(run.name, resume_token="5")]
    assert [r.event.sequence for r in seen] == [6, 7]
    assert seen[-1].training_run.failure.kind == types_pb2.INVALID_DATASET


async def test_watch_gives_up_after_consecutive_drops_without_progress(stack: FakeStack) -> None:
    run = a_run(stack)
    stack.runs.events[run.name] = scripted_events(run)
    stack.runs.watch_drops = [("abort", 2)] + [("abort", 0)] * 10
    async with client_for(stack) as client:
        with pytest.raises(RavenError) as caught:
            async for _ in client.watch(run.name):
                pass
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert "resume token '2'" in caught.value.message
    # The drop after two events is failure 1 in a row; three more empty connections exhaust the policy.
    assert stack.runs.faults.calls["WatchTrainingRun"] == FAST.max_attempts


async def test_watch_of_missing_run_raises_not_found(stack: FakeStack) -> None:
    async with client_for(stack) as client:
        with pytest.raises(RavenError) as caught:
            async for _ in client.watch("trainingRuns/nope"):
                pass
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert stack.runs.faults.calls["WatchTrainingRun"] == 1


async def test_watch_all_reconnects_after_unavailable(stack: FakeStack) -> None:
    stack.runs.watch_all_items = [
        training_run_pb2.WatchTrainingRunsResponse(
            training_run=training_run_pb2.TrainingRun(name=f"trainingRuns/{i}")
        )
        for i in range(3)
    ]
    stack.runs.watch_drops = [("abort", 2)]
    async with client_for(stack) as client:
        seen = []
        async for item in client.watch_all():
            seen.append(item.training_run.name)
            if len(seen) == 5:
                break
    assert seen == ["trainingRuns/0", "trainingRuns/1", "trainingRuns/0", "trainingRuns/1", "trainingRuns/2"]
    assert stack.runs.faults.calls["WatchTrainingRuns"] == 2


def a_model_with_checkpoint(stack: FakeStack, data: bytes, sha256: str = "") -> str:
    stack.models.add(trained_model_pb2.TrainedModel(name="trainedModels/m1", display_name="m"))
    stack.models.artifacts[("trainedModels/m1", types_pb2.CHECKPOINT)] = StoredArtifact(
        data, "epoch_3.pth", sha256
    )
    return "trainedModels/m1"


async def test_download_resumes_after_a_dropped_stream_and_verifies(stack: FakeStack, tmp_path: Path) -> None:
    data = os.urandom(10_000)
    model = a_model_with_checkpoint(stack, data)
    stack.models.download_drops = [3]
    async with client_for(stack) as client:
        result = await client.download(model, types_pb2.CHECKPOINT, tmp_path, chunk_size=1024)
    assert result.path == tmp_path / "epoch_3.pth"
    assert result.path.read_bytes() == data
    assert result.sha256 == hashlib.sha256(data).hexdigest() and result.size == len(data)
    assert stack.models.download_offsets == [0, 3072]
    assert list(tmp_path.iterdir()) == [result.path], "no partial file is left behind"


async def test_download_continues_a_partial_file_from_an_earlier_process(
    stack: FakeStack, tmp_path: Path
) -> None:
    data = os.urandom(5000)
    model = a_model_with_checkpoint(stack, data)
    dest = tmp_path / "model.pth"
    (tmp_path / "model.pth.part").write_bytes(data[:2500])
    async with client_for(stack) as client:
        result = await client.download(model, types_pb2.CHECKPOINT, dest, chunk_size=1000)
    assert stack.models.download_offsets == [2500]
    assert result.resumed_from == 2500 and dest.read_bytes() == data


async def test_download_starts_over_when_the_partial_file_is_longer_than_the_artifact(
    stack: FakeStack, tmp_path: Path
) -> None:
    data = os.urandom(3000)
    model = a_model_with_checkpoint(stack, data)
    (tmp_path / "m.pth.part").write_bytes(os.urandom(4000))
    async with client_for(stack) as client:
        result = await client.download(model, types_pb2.CHECKPOINT, tmp_path / "m.pth")
    assert stack.models.download_offsets == [0]
    assert result.path.read_bytes() == data


async def test_download_with_wrong_sha256_fails_and_keeps_nothing(stack: FakeStack, tmp_path: Path) -> None:
    model = a_model_with_checkpoint(stack, os.urandom(3000), sha256="0" * 64)
    async with client_for(stack) as client:
        with pytest.raises(IntegrityError) as caught:
            await client.download(model, types_pb2.CHECKPOINT, tmp_path / "m.pth")
    assert caught.value.code == grpc.StatusCode.DATA_LOSS
    assert "sha256 mismatch" in caught.value.message
    assert list(tmp_path.iterdir()) == []
