"""Issue 16: tiling as a run option on a real dataset version of large images with tiny objects.

The version's profile (real preparation intake) recommends a tile size; Create refuses a tile larger than
the version's images and an overlap not below the tile (INVALID_ARGUMENT naming the field); ``ravenctl runs
create --tiling auto`` takes the recommended size, the run and its job carry the tiling with its defaults
filled in, and the resolved config carries the inference settings. Real training_run server, real
JetStream, real SQLite.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from common.proto.raven.v1 import datasets_pb2 as pb
from common.proto.raven.v1 import types_pb2
from common.tiling import DEFAULT_MIN_BOX_VISIBILITY, default_overlap
from tests.fixtures.dataset_versions import write_flights
from tests.fixtures.tiny_objects import make_tiny_object_dataset
from tests.integration.training_run.conftest import Harness, pull_jobs
from tests.integration.training_run.datasets_support import Datasets, dataset_root, preparing_worker, uri
from tests.integration.training_run.test_discovery_cli import logs_to_stderr, ravenctl

__all__ = ["logs_to_stderr"]  # the fixture, imported for the test here
SIDE = 1600


async def ready(h: Harness, ds: Datasets, directory: str) -> pb.DatasetVersion:
    version = await ds.version((await ds.create()).name, uri(h, directory))
    async with preparing_worker(h, f"w-{directory}"):
        return await ds.wait_state(version.name, pb.DATASET_VERSION_STATE_READY, timeout=90)


def on_version(version: str, tiling: types_pb2.Tiling) -> dict[str, Any]:
    return {"dataset": "", "dataset_version": version,
            "hyperparameters": types_pb2.Hyperparameters(epochs=2, tiling=tiling)}  # fmt: skip


@pytest.mark.timeout(180)
async def test_tiling_on_a_version_of_large_images_with_tiny_objects(
    logs_to_stderr: None, sqlite_harness: Harness
) -> None:
    h, ds = sqlite_harness, Datasets.of(sqlite_harness)
    make_tiny_object_dataset(dataset_root(h) / "drone", n_images=5, size=SIDE, seed=3)
    version = await ready(h, ds, "drone")
    profile = version.profile
    assert profile.recommended_tile_size == profile.reference_input_size == 640
    assert "tiling.tile_size 640" in profile.recommendation and "--tiling auto" in profile.recommendation

    for tiling, field, words in (
        (types_pb2.Tiling(tile_size=2048), "tile_size", f"largest image side ({SIDE} px), got 2048"),
        (types_pb2.Tiling(tile_size=640, overlap=640), "overlap", "less than tile_size (640)"),
        (types_pb2.Tiling(tile_size=640, min_box_visibility=2.0), "min_box_visibility", "(0, 1]"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await h.create(**on_version(version.name, tiling))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = refused.value.details() or ""
        assert f"training_run.hyperparameters.tiling.{field}" in details and words in details, details

    base = ["-o", "json", "runs", "create", "--dataset-version", version.name, "--template", "rtmdet_tiny",
            "--epochs", "2"]  # fmt: skip
    auto = await ravenctl(h, *base, "--name", "tiled", "--tiling", "auto")
    assert auto.exit_code == 0, auto.output
    run = await h.get(json.loads(auto.stdout)["name"])
    assert run.hyperparameters.tiling == types_pb2.Tiling(
        tile_size=640, overlap=default_overlap(640), min_box_visibility=DEFAULT_MIN_BOX_VISIBILITY
    )
    explicit = await ravenctl(h, *base, "--name", "mine", "--tile-size", "800", "--tile-overlap", "0")
    assert explicit.exit_code == 0, explicit.output
    mine = await h.get(json.loads(explicit.stdout)["name"])
    assert (mine.hyperparameters.tiling.tile_size, mine.hyperparameters.tiling.overlap) == (800, 0)
    assert mine.hyperparameters.tiling.HasField("overlap")
    plain = await ravenctl(h, *base, "--name", "plain")
    assert not (await h.get(json.loads(plain.stdout)["name"])).hyperparameters.HasField("tiling")

    jobs = {j.run_id: j for j in await pull_jobs(h.nc, h.names, expect=3)}
    job = jobs[run.name.split("/")[1]]
    assert job.hyperparameters.tiling.tile_size == 640 and job.hyperparameters.tiling.overlap == 128
    config = dict(job.config)
    assert dict(config["raven"]["sliced_inference"]) == {"sliced": True, "tile_size": 640.0, "overlap": 128.0}
    assert "sliced_inference" not in dict(
        jobs[json.loads(plain.stdout)["name"].split("/")[1]].config["raven"]
    )

    bad = await ravenctl(h, *base, "--name", "b", "--tiling", "auto", "--tile-size", "640")
    assert bad.exit_code == 2 and "not both" in bad.stderr
    write_flights(dataset_root(h) / "survey", n_flights=4, frames=2)  # 64 px frames: nothing to tile
    small = await ready(h, ds, "survey")
    assert small.profile.recommended_tile_size == 0
    none = await ravenctl(h, "runs", "create", "--dataset-version", small.name, "--template", "rtmdet_tiny",
                          "--name", "n", "--tiling", "auto")  # fmt: skip
    assert none.exit_code == 2 and "recommends no tiling" in none.stderr, none.output
