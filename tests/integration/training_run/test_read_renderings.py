"""GetTrainingRun and ListTrainingRuns serve renderings kept per row version (``service_layer/run_reads``):
what they answer must be the run as stored now, also after a write by another replica on the same database."""

from __future__ import annotations

from google.protobuf import field_mask_pb2

from common.proto.raven.v1 import training_run_pb2 as pb
from tests.integration.training_run.conftest import AppFactory, Harness


async def _listed(h: Harness) -> dict[str, pb.TrainingRun]:
    page = await h.stub.ListTrainingRuns(pb.ListTrainingRunsRequest(page_size=10), metadata=h.user)
    assert page.total_size == len(page.training_runs)
    return {r.name: r for r in page.training_runs}


async def test_a_replica_reads_what_another_replica_wrote(
    make_harness: AppFactory, database_url: str
) -> None:
    writer = await make_harness(database_url)
    reader = await make_harness(database_url)
    created = await writer.create(display_name="first name")
    other = await writer.create(display_name="left alone")

    listed = await _listed(reader)
    assert listed[created.name].display_name == "first name"
    assert listed[other.name].display_name == "left alone"
    assert listed[created.name].resolved_config == ""  # a List leaves the config out ...
    first = await reader.get(created.name)  # ... and a Get right after it has it
    assert (first.display_name, first.resolved_config) == ("first name", created.resolved_config)
    assert first.resolved_config_data == created.resolved_config_data

    update = pb.UpdateTrainingRunRequest(
        training_run=pb.TrainingRun(name=created.name, display_name="second name"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
    )
    renamed = await writer.stub.UpdateTrainingRun(update, metadata=writer.user)

    listed = await _listed(reader)
    assert (listed[created.name].display_name, listed[created.name].etag) == ("second name", renamed.etag)
    assert listed[other.name] == (await _listed(writer))[other.name]
    again = await reader.get(created.name)
    assert (again.display_name, again.etag) == ("second name", renamed.etag)
    assert again.resolved_config == created.resolved_config
    assert again == await reader.get(created.name)  # served from the reader's rendering: the same run
