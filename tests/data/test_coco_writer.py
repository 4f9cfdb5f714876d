"""Tests of maskrt.data.coco: COCO document validity, RLE round trip, atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from maskrt.data import coco as coco_mod
from maskrt.data import encode_masks, generate_coco_dataset, make_scene

SIZE = (48, 64)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


def test_dataset_loads_and_matches_scenes(tmp_path):
    out = generate_coco_dataset(tmp_path / "ds", num_images=4, seed=11, size=SIZE)
    assert out == tmp_path / "ds"
    gt = COCO(str(out / "annotations.json"))
    cats = {c["id"]: (c["name"], c["supercategory"]) for c in gt.loadCats(gt.getCatIds())}
    assert cats == {1: ("circle", "shape"), 2: ("square", "shape"),
                    3: ("triangle", "shape"), 4: ("star", "shape")}
    assert sorted(gt.getImgIds()) == [0, 1, 2, 3]
    for i in range(4):
        scene = make_scene(11, i, SIZE)
        info = gt.loadImgs(i)[0]
        assert info["file_name"] == f"{i:06d}.png"
        assert (info["height"], info["width"]) == SIZE
        png = np.asarray(Image.open(out / "images" / info["file_name"]).convert("RGB"))
        assert np.array_equal(png, scene.image)
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[i]))
        assert len(anns) == scene.num_instances
        for k, ann in enumerate(anns):
            assert np.array_equal(gt.annToMask(ann).astype(bool), scene.masks[k])
            assert ann["category_id"] == scene.labels[k]
            assert ann["area"] == scene.masks[k].sum() and ann["iscrowd"] == 0
            x1, y1, x2, y2 = scene.boxes[k].tolist()
            assert ann["bbox"] == [x1, y1, x2 - x1, y2 - y1]
            assert isinstance(ann["segmentation"]["counts"], str)
    ids = [a["id"] for a in gt.dataset["annotations"]]
    assert len(set(ids)) == len(ids) and min(ids) == 1


def test_same_seed_same_dataset(tmp_path):
    a = generate_coco_dataset(tmp_path / "a", 2, seed=3, size=SIZE)
    b = generate_coco_dataset(tmp_path / "b", 2, seed=3, size=SIZE)
    assert (a / "annotations.json").read_bytes() == (b / "annotations.json").read_bytes()
    assert (a / "images/000001.png").read_bytes() == (b / "images/000001.png").read_bytes()


def test_encode_masks_round_trip():
    masks = make_scene(0, 0, SIZE).masks
    rles = encode_masks(masks)
    json.dumps(rles)
    for m, rle in zip(masks, rles):
        rle = {"size": rle["size"], "counts": rle["counts"].encode()}
        assert np.array_equal(mask_utils.decode(rle).astype(bool), m)
    assert encode_masks(np.zeros((0, 4, 4), dtype=bool)) == []


def test_failure_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def flaky_save(image, path):
        calls.append(path)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        Image.fromarray(image).save(path, format="PNG")

    monkeypatch.setattr(coco_mod, "_save_png", flaky_save)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_coco_dataset(tmp_path / "ds", 3, seed=0, size=SIZE)
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []


def test_existing_dir_needs_overwrite_and_failed_overwrite_keeps_old(tmp_path, monkeypatch):
    out = generate_coco_dataset(tmp_path / "ds", 1, seed=0, size=SIZE)
    before = (out / "annotations.json").read_bytes()
    with pytest.raises(FileExistsError):
        generate_coco_dataset(out, 1, seed=1, size=SIZE)

    def broken_save(image, path):
        raise OSError("boom")

    with monkeypatch.context() as m:
        m.setattr(coco_mod, "_save_png", broken_save)
        with pytest.raises(OSError):
            generate_coco_dataset(out, 1, seed=1, size=SIZE, overwrite=True)
    assert (out / "annotations.json").read_bytes() == before
    generate_coco_dataset(out, 2, seed=1, size=SIZE, overwrite=True)
    assert len(json.loads((out / "annotations.json").read_text())["images"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
