"""A version end to end: CreateDatasetVersion on the training_run server, the trainer worker's preparation
intake on real JetStream, READY with its profile and a grouped split, followed with WatchDatasetVersion."""

from __future__ import annotations

import json

from common.proto.raven.v1 import datasets_pb2 as pb
from tests.fixtures.dataset_versions import write_flights
from tests.integration.training_run.conftest import Harness
from tests.integration.training_run.datasets_support import (
    ALICE,
    Datasets,
    dataset_root,
    preparing_worker,
    uri,
)


async def test_a_coco_directory_becomes_ready_with_a_profile_and_flights_in_one_split(
    sqlite_harness: Harness,
) -> None:
    h, ds = sqlite_harness, Datasets.of(sqlite_harness)
    write_flights(dataset_root(h) / "survey", n_flights=6, frames=2)
    version = await ds.version((await ds.create()).name, uri(h, "survey"))

    async with preparing_worker(h) as store:
        request = pb.WatchDatasetVersionRequest(name=version.name)
        responses = [r async for r in ds.stub.WatchDatasetVersion(request, metadata=ALICE, timeout=120)]

    last = responses[-1]
    assert last.event.state_changed.to_state == pb.DATASET_VERSION_STATE_READY, last
    ready = await ds.get_version(version.name)
    assert ready.state == pb.DATASET_VERSION_STATE_READY and len(ready.split_sha256) == 64
    assert ready.profile.images == 12 and ready.split.group_key == "sequence"
    assert sum(s.images for s in ready.split.splits) == 12
    assert ready.near_duplicate_groups and all(g.resolved_split for g in ready.near_duplicate_groups)
    # Every flight (group) lies inside one split (the manifest's file_names per split).
    manifest = json.loads(store.read_bytes(ready.split_manifest.uri))
    split_of = {path: split for split, paths in manifest["file_names"].items() for path in paths}
    assert len(split_of) == 12
    for flight in range(6):
        splits = {split for path, split in split_of.items() if path.startswith(f"flights/{flight}/")}
        assert len(splits) == 1, (flight, splits)
