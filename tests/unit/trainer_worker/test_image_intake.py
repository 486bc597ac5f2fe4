"""Hostile image files at intake, with real tiny images: EXIF rotation, cut JPEG data, empty files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from services.trainer_worker.adapters.dataset_source import prepare_dataset
from services.trainer_worker.adapters.image_facts import inspect_image, size_mismatch
from services.trainer_worker.domain.problems import DatasetInvalid, Problem
from tests.fixtures.synthetic_coco import make_dataset


def jpeg(width: int, height: int, *, orientation: int = 1, seed: int = 0) -> bytes:
    """A textured JPEG stored as ``width`` x ``height``, with an EXIF orientation tag unless 1."""
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    Image.fromarray(pixels).save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def test_training_decodes_exif_orientation_6_turned_so_the_displayed_size_counts() -> None:
    import cv2
    import mmcv

    data = jpeg(64, 48, orientation=6)
    decoded = mmcv.imfrombytes(data, flag="color")  # what mmdet's LoadImageFromFile calls by default
    assert decoded.shape[:2] == (64, 48)  # rows, cols: 48 wide, 64 high as displayed
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (64, 48)
    facts = inspect_image(data)
    assert facts.size == (48, 64) and facts.stored_size == (64, 48) and facts.orientation == 6
    assert size_mismatch(facts, (48, 64)) == ""
    assert "EXIF orientation 6" in size_mismatch(facts, (64, 48))


def test_empty_unknown_and_cut_files_are_named_without_reprs() -> None:
    assert inspect_image(b"").error == "is empty (0 bytes)"
    unknown = inspect_image(b"GIF89a but not really").error
    assert unknown.startswith("is not a readable image") and "0x" not in unknown and "BytesIO" not in unknown
    whole = jpeg(96, 96)
    assert inspect_image(whole).error == ""
    for cut in (len(whole) // 2, len(whole) - 1):
        facts = inspect_image(whole[:cut])
        assert facts.error.startswith("is truncated or corrupt: it does not decode to the end")
        assert "0x" not in facts.error


def test_perceptual_hash_sees_a_resaved_copy_as_near_and_another_image_as_far() -> None:
    original = inspect_image(jpeg(128, 96, seed=1)).phash
    image = Image.open(io.BytesIO(jpeg(128, 96, seed=1)))
    resaved = io.BytesIO()
    image.resize((120, 90)).save(resaved, "JPEG", quality=60)
    copy = inspect_image(resaved.getvalue()).phash
    other = inspect_image(jpeg(128, 96, seed=2)).phash
    assert original is not None and copy is not None and other is not None
    assert (original ^ copy).bit_count() <= 4 < (original ^ other).bit_count()
    with Image.open(io.BytesIO(jpeg(128, 96, seed=1))) as again:
        again.draft("L", (64, 64))  # decoded as inspect_image decodes it
        assert original == int(str(imagehash.phash(again)), 16)  # the library's own 64-bit value


@pytest.fixture
def root(tmp_path: Path) -> Path:
    make_dataset(tmp_path / "datasets" / "waste", n_images=12, size=64)
    return tmp_path / "datasets"


def _set_image(root: Path, image_id: int, data: bytes, annotated: tuple[int, int]) -> None:
    doc_path = root / "waste" / "annotations.json"
    doc = json.loads(doc_path.read_text())
    entry = next(i for i in doc["images"] if i["id"] == image_id)
    entry["width"], entry["height"] = annotated
    # boxes inside the smaller side, so only the image size can be wrong
    for ann in doc["annotations"]:
        if ann["image_id"] == image_id:
            ann.pop("segmentation", None)
            ann["bbox"] = [1, 1, 10, 10]
    doc_path.write_text(json.dumps(doc))
    (root / "waste" / entry["file_name"]).write_bytes(data)


def test_an_exif_rotated_jpeg_annotated_as_displayed_is_accepted(root: Path, tmp_path: Path) -> None:
    _set_image(root, 2, jpeg(64, 48, orientation=6), (48, 64))
    prepared = prepare_dataset(root.as_uri(), "waste", tmp_path / "work", seed=0)
    assert prepared.counts["images"] == 12


def test_intake_defects_are_all_reported_at_once(root: Path, tmp_path: Path) -> None:
    _set_image(root, 2, jpeg(64, 48, orientation=6), (64, 48))  # annotated on the stored frame
    whole = jpeg(64, 64, seed=3)
    _set_image(root, 3, whole[: len(whole) // 2], (64, 64))  # header intact, data cut
    _set_image(root, 4, b"", (64, 64))
    with pytest.raises(DatasetInvalid) as caught:
        prepare_dataset(root.as_uri(), "waste", tmp_path / "work", seed=0)
    details = caught.value.details
    assert set(caught.value.kinds) == {Problem.IMAGE_SIZE_MISMATCH, Problem.IMAGE_UNREADABLE}
    assert details[0].startswith(
        "image id 2: file 'images/0002.jpg' is 48x64 pixels as displayed (EXIF orientation 6 turns the "
        "stored 64x48 frame"
    )
    assert details[1].startswith("image id 3: file 'images/0003.jpg' is truncated or corrupt")
    assert details[2] == "image id 4: file 'images/0004.jpg' is empty (0 bytes)"
    assert not any("0x" in d or "BytesIO" in d for d in details)
