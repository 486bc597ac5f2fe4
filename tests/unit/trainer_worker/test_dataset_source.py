"""The real dataset adapter on real image files under tmp_path (file:// roots) and fsspec's memory://."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import fsspec
import pytest
from PIL import Image
from pycocotools.coco import COCO

from services.trainer_worker.adapters.dataset_source import prepare_dataset, resolve_dataset_ref
from services.trainer_worker.domain.problems import DatasetInvalid, Problem
from services.trainer_worker.domain.split import SplitFractions
from services.trainer_worker.domain.version_split import split_seed
from tests.fixtures.synthetic_coco import make_dataset


@pytest.fixture
def root(tmp_path: Path) -> Path:
    make_dataset(tmp_path / "datasets" / "waste", n_images=30, size=128)
    return tmp_path / "datasets"


def url(root: Path) -> str:
    return root.as_uri()


def source_doc(root: Path, ref: str = "waste") -> dict:  # type: ignore[type-arg]
    return json.loads((root / ref / "annotations.json").read_text())


def write_annotations(root: Path, doc: dict, ref: str = "waste") -> None:  # type: ignore[type-arg]
    (root / ref / "annotations.json").write_text(json.dumps(doc))


def test_prepares_loadable_split_files_with_polygon_envelopes(root: Path, tmp_path: Path) -> None:
    prepared = prepare_dataset(url(root), "waste", tmp_path / "work", seed=5)
    assert prepared.image_root == root / "waste"  # local root: images used in place
    assert prepared.class_names == ("bottle", "tire", "bag")
    assert prepared.counts["images"] == 30
    assert prepared.counts["train"] + prepared.counts["val"] + prepared.counts["test"] == 30
    assert prepared.counts["annotations"] == len(source_doc(root)["annotations"])
    seen_images = 0
    for ann_file in (prepared.train_ann, prepared.val_ann, prepared.test_ann):
        assert ann_file is not None and ann_file.is_absolute()
        coco = COCO(str(ann_file))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["bottle", "tire", "bag"]
        for image in coco.loadImgs(coco.getImgIds()):
            with Image.open(prepared.image_root / image["file_name"]) as im:
                assert im.size == (image["width"], image["height"])
        for a in coco.loadAnns(coco.getAnnIds()):
            _, _, w, h = a["bbox"]
            assert w > 0 and h > 0 and a["area"] > 0  # polygon-only annotations got their envelope
        seen_images += len(coco.getImgIds())
    assert seen_images == 30
    train = COCO(str(prepared.train_ann))
    assert {a["category_id"] for a in train.loadAnns(train.getAnnIds())} == {1, 2, 3}
    manifest = json.loads(prepared.manifest_path.read_text())
    assert manifest["run_seed"] == 5 and manifest["snapshot_sha256"] == prepared.snapshot_sha256
    assert manifest["seed"] == split_seed(manifest["image_files_sha256"])
    assert manifest["seed_source"] == "image_files_sha256"
    assert sorted(manifest["train"]) == sorted(train.getImgIds())
    assert set(prepared.stage_seconds) >= {"validate", "images", "split", "write"}


def test_a_plain_reference_is_split_by_its_content_not_by_the_run_seed(root: Path, tmp_path: Path) -> None:
    one = prepare_dataset(url(root), "waste", tmp_path / "s1", seed=1)
    other = prepare_dataset(url(root), "waste", tmp_path / "s2", seed=2)
    for split in ("train", "val", "test"):
        first, second = (json.loads(p.manifest_path.read_text())["file_names"][split] for p in (one, other))
        assert first == second, split
    assert json.loads(one.manifest_path.read_text())["file_names"]["val"]  # a split that can differ


def test_same_seed_same_output_and_hash_follows_content_only(root: Path, tmp_path: Path) -> None:
    first = prepare_dataset(url(root), "waste", tmp_path / "w1", seed=1)
    again = prepare_dataset(url(root), "waste", tmp_path / "w2", seed=1)
    assert first.snapshot_sha256 == again.snapshot_sha256
    assert first.manifest_path.read_text() == again.manifest_path.read_text()
    assert first.train_ann.read_bytes() == again.train_ann.read_bytes()
    # reformatting and reordering the annotations file changes neither the split nor the hash
    doc = source_doc(root)
    doc["images"].reverse()
    doc["annotations"].reverse()
    (root / "waste" / "annotations.json").write_text(json.dumps(doc, indent=4, sort_keys=True))
    reordered = prepare_dataset(url(root), "waste", tmp_path / "w3", seed=1)
    manifest = json.loads(reordered.manifest_path.read_text())
    assert manifest["train"] == json.loads(first.manifest_path.read_text())["train"]
    # hash is over canonical JSON: list order is content, key order and whitespace are not
    assert reordered.snapshot_sha256 != first.snapshot_sha256
    doc["images"].reverse()
    doc["annotations"].reverse()
    (root / "waste" / "annotations.json").write_text(json.dumps(doc, indent=None))
    assert (
        prepare_dataset(url(root), "waste", tmp_path / "w4", seed=1).snapshot_sha256 == first.snapshot_sha256
    )
    # one changed pixel changes the hash
    image_path = root / "waste" / "images" / "0007.jpg"
    with Image.open(image_path) as im:
        im = im.copy()
    im.putpixel((0, 0), (255, 0, 0))
    im.save(image_path, quality=92)
    assert (
        prepare_dataset(url(root), "waste", tmp_path / "w5", seed=1).snapshot_sha256 != first.snapshot_sha256
    )


def test_existing_split_is_respected(tmp_path: Path) -> None:
    make_dataset(tmp_path / "root" / "presplit", n_images=20, size=96, with_split=True)
    prepared = prepare_dataset(url(tmp_path / "root"), "presplit", tmp_path / "work", seed=0)
    manifest = json.loads(prepared.manifest_path.read_text())
    assert manifest["split_source"] == "dataset"
    for split in ("train", "val", "test"):
        given = json.loads((tmp_path / "root" / "presplit" / f"{split}.json").read_text())
        assert manifest[split] == sorted(i["id"] for i in given["images"])
    assert prepared.counts == {
        "train": 14,
        "val": 4,
        "test": 2,
        "images": 20,
        "annotations": prepared.counts["annotations"],
    }


def test_class_names_keep_and_renumber_categories_and_empty_test_gives_none(
    root: Path, tmp_path: Path
) -> None:
    prepared = prepare_dataset(
        url(root),
        "waste",
        tmp_path / "work",
        seed=0,
        class_names=["bag", "bottle"],
        fractions=SplitFractions(0.8, 0.2, 0.0),
    )
    assert prepared.class_names == ("bag", "bottle")
    assert prepared.test_ann is None and prepared.counts["test"] == 0
    doc = json.loads(prepared.train_ann.read_text())
    assert doc["categories"] == [{"id": 1, "name": "bag"}, {"id": 2, "name": "bottle"}]
    source = source_doc(root)
    wanted = {a["id"]: {3: 1, 1: 2}[a["category_id"]] for a in source["annotations"] if a["category_id"] != 2}
    prepared_anns = doc["annotations"] + json.loads(prepared.val_ann.read_text())["annotations"]
    assert {a["id"]: a["category_id"] for a in prepared_anns} == wanted


def test_file_problems_are_reported_together(root: Path, tmp_path: Path) -> None:
    images = root / "waste" / "images"
    (images / "0003.jpg").unlink()
    (images / "0004.jpg").write_bytes(b"this is not a jpeg")
    Image.new("RGB", (100, 80)).save(images / "0005.jpg")
    with pytest.raises(DatasetInvalid) as caught:
        prepare_dataset(url(root), "waste", tmp_path / "work", seed=0)
    err = caught.value
    assert set(err.kinds) == {Problem.IMAGE_MISSING, Problem.IMAGE_UNREADABLE, Problem.IMAGE_SIZE_MISMATCH}
    assert len(err.details) == 3
    assert err.details[0] == "image id 3: file 'images/0003.jpg' not found in the dataset directory"
    assert err.details[1] == (
        "image id 4: file 'images/0004.jpg' is not a readable image (not a format the decoder recognises)"
    )
    assert (
        err.details[2]
        == "image id 5: file 'images/0005.jpg' is 100x80 pixels but the annotations say 128x128"
    )
    assert err.message.startswith("dataset 'waste' is invalid (3 problems")


def test_annotation_and_file_problems_share_one_report(root: Path, tmp_path: Path) -> None:
    doc = source_doc(root)
    doc["annotations"][0]["bbox"] = [100, 100, 50, 50]
    doc["annotations"][0].pop("segmentation", None)
    write_annotations(root, doc)
    (root / "waste" / "images" / "0002.jpg").unlink()
    with pytest.raises(DatasetInvalid) as caught:
        prepare_dataset(url(root), "waste", tmp_path / "work", seed=0)
    assert set(caught.value.kinds) == {Problem.BBOX_OUTSIDE_IMAGE, Problem.IMAGE_MISSING}


def test_not_json_is_reported(root: Path, tmp_path: Path) -> None:
    (root / "waste" / "annotations.json").write_text("{'images': [")
    with pytest.raises(DatasetInvalid) as caught:
        prepare_dataset(url(root), "waste", tmp_path / "work", seed=0)
    assert caught.value.kinds == (Problem.NOT_JSON,)
    assert caught.value.details[0].startswith("annotations.json: not valid JSON (Expecting property name")


def test_symlinked_image_leaving_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.jpg"
    Image.new("RGB", (128, 128)).save(outside)
    target = root / "waste" / "images" / "0001.jpg"
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(DatasetInvalid) as caught:
        prepare_dataset(url(root), "waste", tmp_path / "work", seed=0)
    assert caught.value.details == [
        "image id 1: file 'images/0001.jpg' is not a readable image "
        "(it resolves outside the dataset root (symlink))"
    ]


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("", "is empty"),
        ("..", "must not contain '.' or '..' segments"),
        ("waste/../../etc", "must not contain '.' or '..' segments"),
        ("./waste", "must not contain '.' or '..' segments"),
        ("/etc", "must be a relative path"),
        ("http://example.com/ds", "URL scheme"),
        ("waste v1", "only letters, digits"),
        ("nope", "does not exist under the dataset root"),
        ("waste/images", "holds no annotations.json"),
    ],
)
def test_resolve_dataset_ref_rejects(root: Path, ref: str, reason: str) -> None:
    with pytest.raises(DatasetInvalid) as caught:
        resolve_dataset_ref(url(root), ref)
    assert reason in caught.value.message


def test_resolve_dataset_ref_normalizes_and_refuses_symlinked_escape(root: Path, tmp_path: Path) -> None:
    assert resolve_dataset_ref(url(root), "waste/") == "waste"
    make_dataset(tmp_path / "elsewhere", n_images=3, size=64)
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DatasetInvalid, match="does not exist under the dataset root"):
        resolve_dataset_ref(url(root), "linked")


def test_remote_root_images_are_copied_into_the_work_dir(tmp_path: Path) -> None:
    local = make_dataset(tmp_path / "src", n_images=12, size=64)
    fs = fsspec.filesystem("memory")
    remote = f"/ds-{uuid.uuid4().hex[:8]}"
    for path in sorted(local.rglob("*")):
        if path.is_file():
            fs.pipe_file(f"{remote}/waste/{path.relative_to(local).as_posix()}", path.read_bytes())
    try:
        prepared = prepare_dataset(f"memory://{remote}", "waste", tmp_path / "work", seed=0)
        local_hash = prepare_dataset(
            local.parent.as_uri(), "src", tmp_path / "work-local", seed=0
        ).snapshot_sha256
    finally:
        fs.rm(remote, recursive=True)
    assert prepared.image_root == tmp_path / "work" / "images"
    assert prepared.snapshot_sha256 == local_hash  # same content, same snapshot whatever the store
    coco = COCO(str(prepared.train_ann))
    for image in coco.loadImgs(coco.getImgIds()):
        copied = prepared.image_root / image["file_name"]
        assert copied.read_bytes() == (local / image["file_name"]).read_bytes()
        assert Image.open(io.BytesIO(copied.read_bytes())).size == (64, 64)


def test_prepared_files_load_in_mmdet_coco_dataset(root: Path, tmp_path: Path) -> None:
    pytest.importorskip("mmcv", reason="mmcv is installed by scripts/setup.sh")
    from mmdet.datasets import CocoDataset

    prepared = prepare_dataset(url(root), "waste", tmp_path / "work", seed=0)
    ds = CocoDataset(
        ann_file=str(prepared.train_ann),
        data_root=str(prepared.image_root),
        data_prefix={"img": ""},
        metainfo={"classes": prepared.class_names},
        pipeline=[],
        test_mode=True,
    )
    assert len(ds) == prepared.counts["train"]
    first = ds[0]
    assert Path(first["img_path"]).is_file() and first["instances"]
