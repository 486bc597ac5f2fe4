"""``python -m services.trainer_worker`` as a process: settings from env, a job, SIGTERM → exit 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from common.nats_streams import StreamNames, connect
from common.proto.raven.v1 import events_pb2, types_pb2
from tests.fixtures.synthetic_coco import make_dataset
from tests.helpers import token, worker_token
from tests.integration.trainer_worker.test_worker_harness import FakeRun, eventually, start_lease_server

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[3]


async def test_worker_process_fails_a_bad_job_keeps_going_and_exits_cleanly_on_sigterm(
    tmp_path: Path, nats_url: str, unique: str
) -> None:
    server, servicer = await start_lease_server()
    bad = make_dataset(tmp_path / "datasets" / "bad", n_images=6, size=128)
    doc = json.loads((bad / "annotations.json").read_text())
    doc["annotations"][0]["bbox"] = [0, 0, -5, 10]  # non-positive width
    doc["annotations"][0].pop("segmentation", None)
    (bad / "annotations.json").write_text(json.dumps(doc))
    names = StreamNames(jobs=f"JOBS_{unique}", events=f"EVENTS_{unique}", prefix=f"p{unique}")
    env = {
        **os.environ,
        "RAVEN_DATA_DIR": str(tmp_path / "data"),
        "RAVEN_NATS_URL": nats_url,
        "RAVEN_TRAINING_RUN_ADDR": f"127.0.0.1:{server.port}",
        "RAVEN_WORKER_TOKEN": worker_token(),
        "RAVEN_DATASET_ROOT": f"file://{tmp_path / 'datasets'}",
        "RAVEN_JOBS_STREAM": names.jobs,
        "RAVEN_EVENTS_STREAM": names.events,
        "RAVEN_SUBJECT_PREFIX": names.prefix,
        "RAVEN_WORKER_ID": f"proc-{unique}",
        "RAVEN_DEVICE": "cpu",
        "RAVEN_LOG_JSON": "false",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.trainer_worker",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    nc = await connect(nats_url, "test")
    js = nc.jetstream()
    try:

        async def consumer_ready() -> bool:
            try:
                await js.consumer_info(names.jobs, "trainer-workers")
                return True
            except Exception:
                return proc.returncode is not None  # stop waiting: the assertion below explains

        await eventually(consumer_ready, within=60, what="the worker's durable consumer")
        assert proc.returncode is None, (await proc.stdout.read()).decode()  # type: ignore[union-attr]
        servicer.runs["run-proc"] = FakeRun()
        job = events_pb2.TrainingJob(run_id="run-proc", attempt=1, dataset="bad")
        await js.publish(names.jobs_subject, job.SerializeToString(), headers={"Nats-Msg-Id": "run-proc:1"})

        async def failed_event() -> events_pb2.RunEvent | None:
            try:
                raw = await js.get_last_msg(names.events, names.run_events_subject("run-proc"))
            except Exception:
                return None
            event = events_pb2.RunEvent()
            event.ParseFromString(raw.data)
            return event if event.HasField("failed") else None

        await eventually(failed_event, within=60, what="the failed event")
        event = await failed_event()
        assert event is not None and event.failed.failure.kind == types_pb2.INVALID_DATASET
        await eventually(lambda: _empty(js, names.jobs), within=10, what="the job acked")
        assert proc.returncode is None  # a bad job never kills the worker

        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 30)
        output = (await proc.stdout.read()).decode()  # type: ignore[union-attr]
        assert rc == 0, output
        assert "worker stopped" in output
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for stream in (names.jobs, names.events):
            try:
                await js.delete_stream(stream)
            except Exception:
                pass
        await nc.close()
        await server.stop(0)


async def _empty(js, stream: str) -> bool:  # type: ignore[no-untyped-def]
    return int((await js.stream_info(stream)).state.messages) == 0


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"RAVEN_JWT_SECRET": "the-signing-secret"}, "was given the JWT signing key (RAVEN_JWT_SECRET)"),
        ({"RAVEN_JWT_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----"}, "signing key (RAVEN_JWT_PRIVATE_KEY)"),
        ({"RAVEN_WORKER_TOKEN": token("root", ["superadmin"])}, "only the 'worker' permission"),
        ({"RAVEN_WORKER_TOKEN": ""}, "set exactly one of RAVEN_WORKER_TOKEN_FILE and RAVEN_WORKER_TOKEN"),
    ],
)
async def test_the_worker_refuses_to_start_with_a_signing_key_or_without_a_worker_token(
    tmp_path: Path, extra: dict[str, str], expected: str
) -> None:
    """Before it connects to anything: a clear message and exit status 2, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAVEN_")}
    env.update(RAVEN_DATA_DIR=str(tmp_path), RAVEN_NATS_URL="nats://127.0.0.1:1", RAVEN_LOG_JSON="false")
    env.update({"RAVEN_WORKER_TOKEN": worker_token(), **extra})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.trainer_worker", cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(proc.communicate(), 90)
    text = output.decode()
    assert proc.returncode == 2, text
    assert expected in text and "Traceback" not in text
    assert "the-signing-secret" not in text
