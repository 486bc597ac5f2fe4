"""protos/ as a contract for clients in any language.

- ``buf lint`` passes with the repo's buf.yaml, and ``buf breaking`` finds nothing against the release
  baseline (protos/baseline/), while a copy with a removed field, a renamed enum value, a changed type or a
  removed RPC is refused: the check can fail.
- Every RPC's comment names the permission the server actually requires (the tables the auth interceptor
  uses), lists its errors, and every server stream says how to resume.
- The vendored google/rpc files are those of the installed googleapis-common-protos, and docs/tokens.md lists
  every permission string.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import google.rpc.status_pb2
import pytest

from common.auth import Permission
from common.proto.raven.v1 import trained_model_pb2, training_run_pb2
from services.trained_model.entrypoints.grpc_servicer import (
    REQUIRED_PERMISSIONS as TRAINED_MODEL_PERMISSIONS,
)
from services.training_run.entrypoints.grpc_servicer import (
    REQUIRED_PERMISSIONS as TRAINING_RUN_PERMISSIONS,
)
from tests.node_tools import ROOT, buf

BASELINE = Path("protos/baseline/v0.1.0.json")
PROTOS = ROOT / "protos" / "raven" / "v1"
RPC = re.compile(r"^\s*rpc (\w+)\(")
PERMISSION = re.compile(r"Permission: ([a-z_]+(?:\.[a-z_]+)?)")
SERVICES = {
    "training_run.proto": training_run_pb2.DESCRIPTOR.services_by_name["TrainingRunService"],
    "trained_model.proto": trained_model_pb2.DESCRIPTOR.services_by_name["TrainedModelService"],
}


def test_buf_lint_passes() -> None:
    result = buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_breaking_change_against_the_release_baseline() -> None:
    result = buf("breaking", "--against", str(BASELINE))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def protos_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    return tmp_path


def edit(copy: Path, file: str, pattern: str, replacement: str) -> None:
    path = copy / "protos" / "raven" / "v1" / file
    text, count = re.subn(pattern, replacement, path.read_text(), count=1, flags=re.MULTILINE)
    assert count == 1, f"{pattern!r} not found in {file}"
    path.write_text(text)


@pytest.mark.parametrize(
    ("file", "pattern", "replacement", "reported"),
    [
        ("training_run.proto", r"^\s*string display_name = 2;.*\n", "", "display_name"),  # removed field
        ("types.proto", r"^  PENDING = 1;", "  RUN_STATE_PENDING = 1;", "PENDING"),  # renamed enum value
        ("training_run.proto", r"int32 attempt = 11;", "int64 attempt = 11;", "attempt"),  # changed type
        ("trained_model.proto", r"^\s*rpc GetTrainedModelStatistics\(.*\n", "", "GetTrainedModelStatistics"),
    ],
)
def test_breaking_changes_are_refused(
    protos_copy: Path, file: str, pattern: str, replacement: str, reported: str
) -> None:
    edit(protos_copy, file, pattern, replacement)
    result = buf("breaking", "--against", str(ROOT / BASELINE), cwd=protos_copy)
    assert result.returncode != 0, "buf breaking accepted a breaking change"
    assert reported in result.stdout, result.stdout + result.stderr


def test_lint_refuses_an_rpc_without_a_comment(protos_copy: Path) -> None:
    edit(protos_copy, "training_run.proto", r"(^\s*//.*\n)+(?=\s*rpc GetTrainingRun\()", "")
    result = buf("lint", cwd=protos_copy)
    assert result.returncode != 0
    assert 'RPC "GetTrainingRun" should have a non-empty comment' in result.stdout, result.stdout


def rpc_comments(path: Path) -> dict[str, str]:
    """The leading comment of each RPC in a .proto file, its lines joined by spaces."""
    found: dict[str, str] = {}
    comment: list[str] = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("//"):
            comment.append(stripped.removeprefix("//").strip())
            continue
        match = RPC.match(line)
        if match:
            found[match.group(1)] = " ".join(comment)
        comment = []
    return found


@pytest.mark.parametrize("file", sorted(SERVICES))
def test_every_rpc_comment_states_the_permission_the_server_requires_and_the_errors(file: str) -> None:
    service = SERVICES[file]
    required = {**TRAINING_RUN_PERMISSIONS, **TRAINED_MODEL_PERMISSIONS}
    comments = rpc_comments(PROTOS / file)
    for method in service.methods:
        comment = comments.get(method.name, "")
        stated = PERMISSION.findall(comment)
        needed = str(required[f"/{service.full_name}/{method.name}"])
        assert stated and stated[0] == needed, f"{method.name}: comment says {stated}, server needs {needed}"
        assert "Errors:" in comment, f"{method.name}: the comment lists no errors"
        if method.server_streaming:
            assert "resume" in comment.lower(), f"{method.name}: a stream without its resume contract"


def test_vendored_google_rpc_protos_are_those_of_the_installed_package() -> None:
    installed = Path(google.rpc.status_pb2.__file__).parent
    vendored = ROOT / "protos" / "google" / "rpc"
    for name in ("status.proto", "error_details.proto", "code.proto"):
        assert (vendored / name).read_bytes() == (installed / name).read_bytes(), name
    assert not (ROOT / "common" / "proto" / "google").exists(), "google/rpc must not be generated"


def test_the_token_contract_lists_every_permission_string() -> None:
    contract = (ROOT / "docs" / "tokens.md").read_text()
    missing = [p.value for p in Permission if f"| `{p.value}` |" not in contract]
    assert not missing, f"docs/tokens.md does not list {missing}"
