"""A dead-lettered dataset preparation job names its version (payload first, else its Nats-Msg-Id); any other
message names none (pure logic: common.dead_letters)."""

from __future__ import annotations

from common.dead_letters import describe_preparation, preparation_version
from common.nats_streams import StreamNames
from common.proto.raven.v1 import datasets_pb2, dead_letters_pb2

NAMES = StreamNames(jobs="J", events="E", prefix="raven")
VERSION = "datasets/d1/versions/3"


def record(subject: str, payload: bytes = b"", msg_id: str = "") -> dead_letters_pb2.DeadLetter:
    headers = {"Nats-Msg-Id": msg_id} if msg_id else {}
    return dead_letters_pb2.DeadLetter(
        subject=subject, payload=payload, headers=headers, deliveries=5, reason="no_ack", error="never acked"
    )


def test_the_version_comes_from_the_job_or_its_message_id() -> None:
    job = datasets_pb2.DatasetPreparationJob(dataset_version=VERSION, attempt=1).SerializeToString()
    assert preparation_version(NAMES, record(NAMES.dataset_jobs_subject, job)) == VERSION
    unreadable = record(NAMES.dataset_jobs_subject, b"\x08\xff\xff", msg_id=f"{VERSION}:1")
    assert preparation_version(NAMES, unreadable) == VERSION
    assert preparation_version(NAMES, record(NAMES.dataset_jobs_subject, b"\x08\xff\xff", "junk:1")) == ""


def test_other_messages_name_no_version() -> None:
    job = datasets_pb2.DatasetPreparationJob(dataset_version=VERSION).SerializeToString()
    assert preparation_version(NAMES, record(NAMES.jobs_subject, job, f"{VERSION}:1")) == ""
    assert preparation_version(NAMES, record(NAMES.evaluation_jobs_subject, job)) == ""


def test_the_problem_says_how_often_and_why() -> None:
    text = describe_preparation(record(NAMES.dataset_jobs_subject))
    assert text.startswith("preparation failed 5 time(s) and was given up (no_ack): never acked")
