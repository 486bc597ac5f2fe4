import hashlib
from pathlib import Path

import pytest

from common.artifacts import ArtifactStore, normalize_key
from common.errors import InvalidArgument, NotFound


@pytest.mark.parametrize(
    "key",
    [
        "",
        "  ",
        "../etc/passwd",
        "a/../../b",
        "/etc/passwd",
        "a/./b",
        "file:///etc/passwd",
        "s3://other/x",
        "a\\..\\b",
        "a\x00b",
    ],
)
def test_escaping_keys_are_rejected(key: str, tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path / 'root'}")
    with pytest.raises(InvalidArgument):
        store.put_bytes(key, b"x")
    assert not (tmp_path / "passwd").exists()


def test_round_trip_records_size_and_sha256(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path / 'root'}")
    data = b"checkpoint" * 1000
    stored = store.put_bytes("runs/r1/model.pth", data)
    assert stored.size_bytes == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest() == store.sha256("runs/r1/model.pth")
    assert store.read_bytes("runs/r1/model.pth") == data
    assert (tmp_path / "root" / "runs" / "r1" / "model.pth").exists()
    chunks = list(store.iter_chunks("runs/r1/model.pth", offset=100, chunk_size=4096))
    assert b"".join(c for _, c in chunks) == data[100:]
    assert chunks[0][0] == 100


def test_put_file_and_delete(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path / 'root'}")
    src = tmp_path / "local.bin"
    src.write_bytes(b"abc")
    stored = store.put_file("a/b.bin", src)
    assert store.exists("a/b.bin") and stored.size_bytes == 3
    assert store.list("a") == ["a/b.bin"]
    store.delete("a/b.bin")
    assert not store.exists("a/b.bin")
    with pytest.raises(NotFound):
        store.read_bytes("a/b.bin")


def test_normalize_keeps_plain_keys() -> None:
    assert normalize_key("runs/x/y.json") == "runs/x/y.json"
