"""ravenctl datasets against the real training_run server and the trainer worker's real preparation intake
(real JetStream, SQLite): create, upload a directory (archived on the fly) and a zip, --wait, watch, versions,
profile (tables at 80 columns, JSON, PNG), and the errors a person gets."""

from __future__ import annotations

import asyncio
import bisect
import io
import json
import math
import shutil
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from services.cli.main import app
from tests.fixtures.dataset_versions import write_flights
from tests.helpers import token
from tests.integration.training_run.conftest import Harness
from tests.integration.training_run.datasets_support import dataset_root, preparing_worker, uri, write_coco
from tests.integration.training_run.test_discovery_cli import logs_to_stderr  # noqa: F401

pytestmark = pytest.mark.usefixtures("logs_to_stderr")

READY = "DATASET_VERSION_STATE_READY"
# The bins the issue names, box size = sqrt(w*h) px; computed here from the COCO file as the oracle.
EDGES, LABELS = (8, 16, 32, 64, 128), ("<8", "8-16", "16-32", "32-64", "64-128", ">128")


async def ravenctl(h: Harness, *args: str) -> Result:
    """ravenctl in a thread whose coroutines run on this test's loop, beside the servers and the worker: one
    loop for every gRPC call (grpc.aio streams across two loops of one process can stall)."""
    loop = asyncio.get_running_loop()

    def on_test_loop(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(120)

    base = [
        "--training-run-addr", f"127.0.0.1:{h.app.port}", "--trained-model-addr", "127.0.0.1:1",
        "--token", token("alice"),
    ]  # fmt: skip
    env = {"COLUMNS": "80", "RAVEN_TOKEN": None}
    return await asyncio.to_thread(CliRunner().invoke, app, [*base, *args], obj=on_test_loop, env=env)


def expected_box_sizes(doc: dict[str, Any]) -> dict[str, int]:
    counts = dict.fromkeys(LABELS, 0)
    for annotation in doc["annotations"]:
        w, h = annotation["bbox"][2:]
        counts[LABELS[bisect.bisect_right(EDGES, math.sqrt(w * h))]] += 1
    return counts


def expected_boxes_per_class(doc: dict[str, Any]) -> dict[str, int]:
    names = {c["id"]: c["name"] for c in doc["categories"]}
    return dict(Counter(names[a["category_id"]] for a in doc["annotations"]))


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("│").split("│")]


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_upload_wait_and_profile(sqlite_harness: Harness, tmp_path: Path) -> None:
    h = sqlite_harness
    doc = write_flights(tmp_path / "survey", n_flights=6, frames=2)
    created = await ravenctl(
        h, "-o", "json", "datasets", "create", "drone survey", "--description", "6 flights"
    )
    assert created.exit_code == 0, created.output
    dataset = json.loads(created.stdout)
    dataset_id = dataset["name"].split("/")[1]
    assert dataset["display_name"] == "drone survey" and dataset["version_count"] == 0

    async with preparing_worker(h):
        uploaded = await ravenctl(
            h, "-o", "json", "datasets", "upload", dataset_id, str(tmp_path / "survey"), "--wait",
            "--split-seed", "3", "--description", "first flights",
        )  # fmt: skip
    assert uploaded.exit_code == 0, uploaded.output
    lines = json_lines(uploaded.stdout)
    version = lines[0]
    assert version["name"] == f"{dataset['name']}/versions/1" and version["description"] == "first flights"
    assert version["upload"]["format"] == "ARCHIVE_FORMAT_TAR" and int(version["upload"]["size_bytes"]) > 0
    assert len(version["upload"]["sha256"]) == 64 and version["split_options"]["seed"] == "3"
    assert lines[-1]["event"]["state_changed"]["to_state"] == READY
    assert f"{version['name']} READY: 12 images, 12 boxes" in uploaded.stderr

    # The same files from a URL, with the same split options: content-addressed, so the same version.
    shutil.copytree(tmp_path / "survey", dataset_root(h) / "survey")
    again = await ravenctl(
        h, "-o", "json", "datasets", "versions", "create", dataset_id, "--from", uri(h, "survey"),
        "--split-seed", "3",
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["name"] == version["name"]

    png = tmp_path / "out" / "boxes.png"
    table = await ravenctl(h, "datasets", "profile", f"{dataset_id}/1", "--png", str(png))
    assert table.exit_code == 0, table.output
    out = table.stdout.splitlines()
    assert max(map(len, out)) <= 80, table.stdout
    box_sizes = expected_box_sizes(doc)
    assert sum(box_sizes[label] > 0 for label in LABELS) >= 3  # the fixture spreads boxes over the bins
    for label, count in box_sizes.items():
        row = next(cells(line) for line in out if cells(line)[:1] == [label])
        assert row[1] == str(count), (label, row)
    for name, count in expected_boxes_per_class(doc).items():
        row = next(cells(line) for line in out if cells(line)[:1] == [name])
        assert row[2] == str(count), (name, row)
    assert f"wrote {png}" in table.stdout
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width >= 300 and image.height >= 200
        image.verify()

    data = json.loads(
        (await ravenctl(h, "-o", "json", "datasets", "profile", version["name"], "--no-png")).stdout
    )
    profile = data["profile"]
    assert data["png"] is None and profile["images"] == 12 and int(profile["annotations"]) == 12
    assert {b["label"]: int(b["count"]) for b in profile["box_sizes"]} == box_sizes
    assert {b["label"]: int(b["count"]) for b in profile["coco_box_sizes"]} == {
        "small": 12,
        "medium": 0,
        "large": 0,
    }
    assert {c["class_name"]: int(c["annotations"]) for c in profile["classes"]} == expected_boxes_per_class(
        doc
    )
    assert sum(s["images"] for s in profile["splits"]) == 12 and data["split"]["group_key"] == "sequence"
    assert data["near_duplicate_groups"], "flight 1's first frame is flight 0's"

    # watch of a READY version replays its events and ends at once; list and get show it.
    watched = await ravenctl(h, "-o", "json", "datasets", "watch", version["name"])
    assert (
        watched.exit_code == 0
        and json_lines(watched.stdout)[-1]["event"]["state_changed"]["to_state"] == READY
    )
    listed = await ravenctl(h, "datasets", "versions", "list", dataset_id)
    assert listed.exit_code == 0 and "READY" in listed.stdout and "1 of 1" in listed.stdout
    datasets = json.loads((await ravenctl(h, "-o", "json", "datasets", "list")).stdout)
    mine = next(d for d in datasets["datasets"] if d["name"] == dataset["name"])
    assert mine["version_count"] == 1 and mine["latest_version"] == version["name"]
    got = await ravenctl(h, "datasets", "get", version["name"])
    assert got.exit_code == 0 and max(map(len, got.stdout.splitlines())) <= 80
    assert "READY" in got.stdout and "sequence" in got.stdout


def zip_of(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


async def test_errors_and_an_invalid_version(sqlite_harness: Harness, tmp_path: Path) -> None:
    h = sqlite_harness
    dataset = json.loads((await ravenctl(h, "-o", "json", "datasets", "create", "broken")).stdout)
    dataset_id = dataset["name"].split("/")[1]

    missing = await ravenctl(h, "datasets", "profile", f"{dataset_id}/99")
    assert missing.exit_code == 2 and missing.stderr.startswith("error: NOT_FOUND: "), missing.output
    unknown = await ravenctl(h, "datasets", "get", "no-such-dataset")
    assert unknown.exit_code == 2 and unknown.stderr.startswith("error: NOT_FOUND: "), unknown.output
    not_a_version = await ravenctl(h, "datasets", "profile", "a/b/c/d")
    assert not_a_version.exit_code == 2 and "is not a dataset version" in not_a_version.stderr
    notes = tmp_path / "notes.txt"
    notes.write_text("not an archive")
    refused = await ravenctl(h, "datasets", "upload", dataset_id, str(notes))
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.startswith("error: INVALID_ARGUMENT: notes.txt is neither a zip nor a tar archive")

    # Images that are not images: the version ends INVALID and --wait prints every problem, exit 1.
    archive = tmp_path / "broken.zip"
    archive.write_bytes(zip_of(write_coco(tmp_path / "broken", images=3)))
    async with preparing_worker(h):
        invalid = await ravenctl(h, "datasets", "upload", dataset_id, str(archive), "--wait")
    assert invalid.exit_code == 1, invalid.output
    assert f"{dataset['name']}/versions/1 INVALID: " in invalid.stderr
    problems = [line for line in invalid.stderr.splitlines() if line.startswith("  - ")]
    assert {n for n in range(3) if any(f"img/frame {n}.jpg" in p for p in problems)} == {0, 1, 2}
    assert not any("object at 0x" in p or "Traceback" in p for p in problems)
    no_profile = await ravenctl(h, "datasets", "profile", f"{dataset_id}/1")
    assert no_profile.exit_code == 2 and "is INVALID" in no_profile.stderr
