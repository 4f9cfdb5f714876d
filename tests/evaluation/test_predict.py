"""predict_dataset: images found by file_name, ids mapped, labels mapped, end to end AP 1 for a perfect model."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from maskrt.data import CLASS_NAMES, generate_coco_dataset, make_scene
from maskrt.engine.detections import Detections
from maskrt.errors import InputError, MaskrtError
from maskrt.evaluation import category_mapping, evaluate, load_coco, predict_dataset

SEED, SIZE = 5, (96, 128)


class PerfectSegmenter:
    """Answers every dataset image with its exact ground truth (score 1), found by pixel equality."""

    def __init__(self, num_images: int, label_offset: int = 0):
        self.scenes = [make_scene(SEED, i, SIZE) for i in range(num_images)]
        self.label_offset = label_offset
        self.calls = 0

    def __call__(self, image: np.ndarray) -> Detections:
        self.calls += 1
        scene = next(s for s in self.scenes if np.array_equal(s.image, image))
        n = len(scene.labels)
        dets = Detections(scene.boxes.astype(np.float32), np.ones(n, np.float32),
                          scene.labels.astype(np.int64) + self.label_offset, np.zeros((n, 28, 28), np.float32),
                          scene.image.shape[:2])
        dets._masks = scene.masks.astype(bool)
        return dets


@pytest.fixture
def dataset(tmp_path):
    return generate_coco_dataset(tmp_path / "ds", 6, seed=SEED, size=SIZE)


def test_perfect_model_scores_one_end_to_end(dataset, capsys):
    gt = load_coco(dataset / "annotations.json")
    seg = PerfectSegmenter(6)
    results = predict_dataset(seg, gt, dataset / "images", progress=True)
    assert seg.calls == 6 and len(results) == len(gt.dataset["annotations"])
    assert {r["image_id"] for r in results} == set(gt.getImgIds())
    assert "eval" in capsys.readouterr().err  # the tqdm bar goes to stderr
    metrics = evaluate(gt, results, verbose=False)
    assert metrics["bbox"]["AP"] == metrics["segm"]["AP"] == 1.0


def test_img_ids_and_max_detections(dataset):
    gt = load_coco(dataset / "annotations.json")
    results = predict_dataset(PerfectSegmenter(6), gt, dataset / "images", img_ids=[1, 3], progress=False,
                              max_detections=1)
    assert [r["image_id"] for r in results] == [1, 3]


def test_label_map_renames_and_drops(dataset):
    gt = load_coco(dataset / "annotations.json")
    # the model numbers its classes one higher than the dataset: map back, drop what has no category
    label_map = {k + 1: k for k in range(2, len(CLASS_NAMES) + 1)}
    results = predict_dataset(PerfectSegmenter(6, label_offset=1), gt, dataset / "images", progress=False,
                              label_map=label_map)
    expected = [a for a in gt.dataset["annotations"] if a["category_id"] >= 2]
    assert sorted(r["category_id"] for r in results) == sorted(a["category_id"] for a in expected)


def test_category_mapping():
    gt = load_coco({"images": [{"id": 1, "file_name": "a", "height": 2, "width": 2}], "annotations": [],
                    "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}]})
    assert category_mapping(["__background__", "circle", "square"], gt)[0] is None
    assert category_mapping(["__background__", "Square", "x", "circle"], gt)[0] == {1: 2, 3: 1}
    mapping, rule = category_mapping(["__background__", "a", "b"], gt)
    assert mapping is None and "label k = category id k" in rule


def test_missing_image_and_wrong_size_are_input_errors(dataset):
    gt = load_coco(dataset / "annotations.json")
    with pytest.raises(MaskrtError, match="images directory not found"):
        predict_dataset(PerfectSegmenter(6), gt, dataset / "nope", progress=False)
    seg = PerfectSegmenter(6)
    (dataset / "images" / "000004.png").unlink()
    with pytest.raises(InputError, match="000004.png"):
        predict_dataset(seg, gt, dataset / "images", progress=False)
    assert seg.calls == 0  # checked before any image is segmented
    Image.new("RGB", (10, 10)).save(dataset / "images" / "000004.png")
    with pytest.raises(InputError, match="is 10x10 but the annotations say 128x96"):
        predict_dataset(seg, gt, dataset / "images", progress=False)


def test_progress_bar_does_not_flood_a_log_file(dataset, capsys):
    """stderr is not a TTY here: the bar prints its first and last state, not one per image."""
    gt = load_coco(dataset / "annotations.json")
    perfect = PerfectSegmenter(6)

    def slow(image):
        time.sleep(0.15)  # slower than tqdm's refresh interval on a terminal
        return perfect(image)

    predict_dataset(slow, gt, dataset / "images", progress=True)
    assert capsys.readouterr().err.count("\r") <= 3
