"""Evaluation jobs on real JetStream, through the worker's evaluation intake: bad input fails the evaluation
at once with a reason (a checkpoint that is not the model's, a damaged version, classes the version lacks),
an unreadable payload is dead-lettered, and each job is settled; nothing is uploaded for a failed one.
(The successful path, with a real model in a child process, is tests/e2e/test_evaluations_e2e.py; the claim
trained_model answers, refusing an evaluation cancelled while PENDING, is
tests/integration/trained_model/test_publish_gate_evaluations.py: here every claim is granted.)"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from common.artifacts import ArtifactStore
from common.nats_streams import StreamNames, connect
from common.proto.raven.v1 import evaluations_pb2, events_pb2, types_pb2
from services.trainer_worker.adapters.jobs import EVALUATION_JOBS, JobQueue
from services.trainer_worker.domain.job import Settlement
from services.trainer_worker.service_layer.ports import EvaluationClaims
from tests.fixtures.dataset_versions import store_version, write_flights
from tests.integration.trainer_worker.evaluation_intake import events_of, run_intake


@pytest.fixture
async def env(
    nats_url: str, unique: str, tmp_path: Path
) -> AsyncIterator[tuple[JetStreamContext, StreamNames, Path]]:
    names = StreamNames(jobs=f"EJOBS_{unique}", events=f"EEVENTS_{unique}", prefix=f"e{unique}")
    nc = await connect(nats_url, "test-evaluation-jobs")
    js = nc.jetstream()
    yield js, names, tmp_path
    for stream in (names.jobs, names.events, names.dead_letters_stream):
        try:
            await js.delete_stream(stream)
        except Exception:
            pass
    await nc.close()


class GrantedClaims(EvaluationClaims):
    """trained_model's answer to every claim here: granted (these jobs have no evaluation row)."""

    def __init__(self) -> None:
        self.claimed: list[tuple[str, int]] = []

    async def claim(self, evaluation_id: str, attempt: int, worker_id: str) -> None:
        self.claimed.append((evaluation_id, attempt))


def a_job(
    store: ArtifactStore, tmp_path: Path, evaluation_id: str, **change: object
) -> evaluations_pb2.EvaluationJob:
    """A job on a stored version (write_flights: bottle, tire) with a stored checkpoint."""
    write_flights(tmp_path / "src", n_flights=4, frames=2)
    stored = store_version(store, tmp_path / "src", "versions/v1")
    manifest = json.dumps({"file_names": {"train": [], "val": [], "test": []}}).encode()
    split = store.put_bytes("versions/v1/split_manifest.json", manifest)
    checkpoint = store.put_bytes(f"models/{evaluation_id}/best.pth", b"weights")
    job = evaluations_pb2.EvaluationJob(
        evaluation_id=evaluation_id, trained_model="trainedModels/m1", split="test", owner="alice",
        class_names=["bottle", "tire"],
        checkpoint=types_pb2.Artifact(kind=types_pb2.CHECKPOINT, uri=checkpoint.key, size_bytes=7,
                                      sha256=checkpoint.sha256),
        dataset_version=events_pb2.TrainingDatasetVersion(
            name="datasets/d1/versions/1", snapshot_sha256=stored.snapshot_sha256, split_sha256="0" * 64,
            split_manifest=types_pb2.Artifact(uri=split.key, sha256=split.sha256),
            file_manifest=types_pb2.Artifact(uri=stored.manifest_key, sha256=stored.manifest_sha256),
            blob_prefix=stored.blob_prefix,
        ),
    )  # fmt: skip
    for key, value in change.items():
        if key == "checkpoint_sha256":
            job.checkpoint.sha256 = str(value)
        elif key == "split_manifest_sha256":
            job.dataset_version.split_manifest.sha256 = str(value)
        elif key == "class_names":
            del job.class_names[:]
            job.class_names.extend(value)  # type: ignore[arg-type]
    return job


async def test_bad_inputs_fail_the_evaluation_with_a_reason(
    env: tuple[JetStreamContext, StreamNames, Path],
) -> None:
    js, names, tmp_path = env
    store = ArtifactStore(f"file://{tmp_path / 'artifacts'}")
    jobs = {
        "replaced-checkpoint": a_job(store, tmp_path, "replaced-checkpoint", checkpoint_sha256="f" * 64),
        "damaged-version": a_job(
            store, tmp_path, "damaged-version", split_manifest_sha256=hashlib.sha256(b"other").hexdigest()
        ),
        "other-classes": a_job(store, tmp_path, "other-classes", class_names=["bottle", "bag"]),
    }
    await JobQueue(js, names, jobs=EVALUATION_JOBS).start()  # stream and consumer exist before the jobs
    for job in jobs.values():
        await js.publish(names.evaluation_jobs_subject, job.SerializeToString())
    await js.publish(names.evaluation_jobs_subject, b"\xff not a job")

    claims = GrantedClaims()
    intake = await run_intake(js, names, store, tmp_path / "work", expect=4, claims=claims)
    assert sorted(intake.settlements) == sorted(
        [Settlement.ACK, Settlement.ACK, Settlement.ACK, Settlement.TERM]
    )

    expected = {
        "replaced-checkpoint": (types_pb2.ARTIFACT_MISMATCH, "the model recorded " + "f" * 64),
        "damaged-version": (types_pb2.INVALID_DATASET, "split manifest does not match its recorded sha256"),
        "other-classes": (types_pb2.INVALID_DATASET, "bag"),
    }
    for evaluation_id, (kind, text) in expected.items():
        events = await events_of(js, names, evaluation_id)
        assert [e.WhichOneof("payload") for e in events] == ["progress", "failed"], events  # claimed first
        failure = events[-1].failed.failure
        assert failure.kind == kind and text in failure.message, failure
        assert events[-1].attempt == 1
        assert store.list(f"evaluations/{evaluation_id}") == []  # nothing uploaded
    assert sorted(claims.claimed) == sorted((evaluation_id, 1) for evaluation_id in jobs)
    assert not list((tmp_path / "work" / "evaluations").glob("*")), "work dirs are removed"
