"""The evaluation is right: ground truth scores AP 1, known perturbations lower it by known amounts.

Expected values are derived from the COCO definition, not from pycocotools: per IoU threshold t
and category c, AP is the mean over the 101 recall levels 0, 0.01, ..., 1 of the interpolated
precision (the best precision at any recall >= that level). When every correct detection ranks
above every wrong one, precision is 1 up to the final recall r and the curve never reaches higher
recalls, so AP_c(t) = #{k in 0..100 : k/100 <= r} / 101 = (floor(100 r) + 1) / 101 (0 if r = 0).
"""

from __future__ import annotations

import math
from collections import defaultdict
from fractions import Fraction

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from maskrt.data import encode_masks, generate_coco_dataset
from maskrt.errors import MaskrtError
from maskrt.evaluation import STAT_NAMES, evaluate, load_coco, summary_line

IOU_THRESHOLDS = [Fraction(50 + 5 * i, 100) for i in range(10)]


@pytest.fixture(scope="module")
def shapes_gt(tmp_path_factory):
    """20 synthetic 128x128 shapes images with exact instance masks (COCO, RLE)."""
    out = generate_coco_dataset(tmp_path_factory.mktemp("eval") / "shapes", 20, seed=3, size=(128, 128))
    return load_coco(out / "annotations.json")


@pytest.fixture(scope="module")
def big_shapes_gt(tmp_path_factory):
    """Like shapes_gt but with only large objects (>= 400 px), so a few-pixel shift has a controlled IoU."""
    out = generate_coco_dataset(tmp_path_factory.mktemp("eval") / "big", 20, seed=3, size=(128, 128),
                                min_size=24, min_area=400, num_objects=(1, 4))
    return load_coco(out / "annotations.json")


def gt_as_results(anns: list[dict], score: float = 1.0) -> list[dict]:
    """Ground-truth annotations turned into COCO results (same box, same RLE, one score)."""
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "score": score,
             "bbox": list(a["bbox"]), "segmentation": dict(a["segmentation"])} for a in anns]


def ap_at_recall(recall: Fraction) -> Fraction:
    """AP at one IoU threshold for one category when precision is 1 up to `recall` and 0 after."""
    return Fraction(0) if recall == 0 else Fraction(math.floor(100 * recall) + 1, 101)


def test_ground_truth_as_predictions_scores_one(shapes_gt, capsys):
    results = gt_as_results(shapes_gt.dataset["annotations"])
    metrics = evaluate(shapes_gt, results)
    for iou_type in ("bbox", "segm"):
        m = metrics[iou_type]
        assert list(m) == list(STAT_NAMES)
        assert m["AP"] == m["AP50"] == m["AP75"] == m["AR10"] == m["AR100"] == 1.0
        for name in ("APs", "APm", "APl", "ARs", "ARm", "ARl"):
            assert m[name] in (1.0, -1.0)  # -1: no object of that size (pycocotools' convention)
    out = capsys.readouterr().out
    assert out.count("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000") == 2
    assert out.count("Average Recall") == 12 and out.count("Average Precision") == 12
    assert "box (bbox)" in out and "mask (segm)" in out
    assert "Loading and preparing" not in out  # pycocotools' chatter is kept out of the tables
    assert summary_line(metrics) == "box AP 1.000 | mask AP 1.000 | mask AP50 1.000"


def test_results_are_not_modified(shapes_gt):
    results = gt_as_results(shapes_gt.dataset["annotations"][:5])
    before = [dict(r) for r in results]
    evaluate(shapes_gt, results, verbose=False)
    assert results == before


def test_dropping_every_second_instance_lowers_ap_by_the_recall_loss(shapes_gt):
    by_category = defaultdict(list)
    for ann in sorted(shapes_gt.dataset["annotations"], key=lambda a: a["id"]):
        by_category[ann["category_id"]].append(ann)
    kept = [ann for anns in by_category.values() for ann in anns[::2]]
    total = len(shapes_gt.dataset["annotations"])
    assert abs(2 * len(kept) - total) <= len(by_category)  # half, up to one per category with an odd count
    recalls = {c: Fraction(len(anns[::2]), len(anns)) for c, anns in by_category.items()}
    # Keeping ceil(n/2) of n gives 100 r = 50 or a non-integer (n odd and 100 r integral needs n | 50,
    # i.e. n in 1, 5, 25: r = 1, 0.6, 0.52): never one of the recall levels that numpy's linspace
    # rounds above k/100, so the float comparison in COCOeval agrees with the exact fractions.
    expected_ap = sum(ap_at_recall(r) for r in recalls.values()) / len(recalls)
    expected_ar = sum(recalls.values()) / len(recalls)
    assert 0.5 < expected_ap < 0.55
    metrics = evaluate(shapes_gt, gt_as_results(kept), verbose=False)
    for iou_type in ("bbox", "segm"):
        m = metrics[iou_type]
        # every kept prediction is exact, so AP is the same at every IoU threshold
        assert m["AP"] == pytest.approx(float(expected_ap), abs=1e-12)
        assert m["AP50"] == pytest.approx(float(expected_ap), abs=1e-12)
        assert m["AP75"] == pytest.approx(float(expected_ap), abs=1e-12)
        assert m["AR100"] == pytest.approx(float(expected_ar), abs=1e-12)


def test_dropping_one_of_four_single_instances():
    """Hand-made: one category, four images of one object each; three found -> AP = 76/101."""
    images = [{"id": i, "file_name": f"{i}.png", "height": 32, "width": 32} for i in range(4)]
    masks = np.zeros((4, 32, 32), bool)
    for i in range(4):
        masks[i, 4 + i:20 + i, 6:22] = True
    anns = [{"id": i + 1, "image_id": i, "category_id": 7, "bbox": [6.0, 4.0 + i, 16.0, 16.0], "area": 256,
             "iscrowd": 0, "segmentation": rle} for i, rle in enumerate(encode_masks(masks))]
    gt = {"images": images, "annotations": anns, "categories": [{"id": 7, "name": "blob"}]}
    metrics = evaluate(gt, gt_as_results(anns[:3]), verbose=False)
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type]["AP"] == pytest.approx(76 / 101, abs=1e-12)
        assert metrics[iou_type]["AR100"] == pytest.approx(0.75, abs=1e-12)


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The mask moved by (dy, dx) pixels; what leaves the image is lost."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def _numpy_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _shift_into_band(mask: np.ndarray, low: float, high: float) -> tuple[np.ndarray, float]:
    """The smallest shift of `mask` whose IoU with it lies strictly inside (low, high), and that IoU."""
    shifts = sorted(((dy, dx) for dy in range(-8, 9) for dx in range(-8, 9) if (dy, dx) != (0, 0)),
                    key=lambda s: (abs(s[0]) + abs(s[1]), s))
    for dy, dx in shifts:
        moved = _shift(mask, dy, dx)
        iou = _numpy_iou(mask, moved)
        if low + 1e-6 < iou < high - 1e-6:
            return moved, iou
    raise AssertionError(f"no shift puts a mask of {mask.sum()} px into IoU ({low}, {high})")


@pytest.mark.parametrize("band", [(0.60, 0.65), (0.70, 0.75)])
def test_shifted_masks_score_the_fraction_of_iou_thresholds_they_pass(big_shapes_gt, band):
    anns = big_shapes_gt.dataset["annotations"]
    results = gt_as_results(anns)
    for res, ann in zip(results, anns):
        gt_mask = mask_utils.decode(ann["segmentation"]).astype(bool)
        moved, iou = _shift_into_band(gt_mask, *band)
        res["segmentation"] = encode_masks(moved[None])[0]
        # pycocotools' own IoU agrees with the numpy one
        assert mask_utils.iou([res["segmentation"]], [ann["segmentation"]], [0])[0, 0] == pytest.approx(iou)
        # and the moved mask cannot match another object of the image instead (IoU < 0.5 with all others)
        others = [a["segmentation"] for a in anns if a["image_id"] == ann["image_id"] and a["id"] != ann["id"]]
        if others:
            assert mask_utils.iou([res["segmentation"]], others, [0] * len(others)).max() < 0.5
    passed = sum(t <= Fraction(str(band[0])) for t in IOU_THRESHOLDS)  # every IoU is in (band[0], band[1])
    metrics = evaluate(big_shapes_gt, results, verbose=False)
    segm = metrics["segm"]
    assert segm["AP"] == pytest.approx(passed / 10, abs=1e-12)  # AP 1 at IoU thresholds <= IoU, 0 above
    assert segm["AP50"] == 1.0
    assert segm["AP75"] == 0.0
    assert segm["AR100"] == pytest.approx(passed / 10, abs=1e-12)
    assert metrics["bbox"]["AP"] == 1.0  # the boxes were left exact: only mask AP drops


def test_annotation_id_zero_is_not_counted_as_a_miss():
    """COCOeval records matches by ground-truth id with 0 meaning "none": ids are renumbered."""
    doc = {"images": [{"id": 0, "file_name": "a.png", "height": 20, "width": 20}],
           "categories": [{"id": 1, "name": "a"}],
           "annotations": [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [0, 0, 5, 5]},
                           {"id": 1, "image_id": 0, "category_id": 1, "bbox": [10, 10, 5, 5]}]}
    results = [{"image_id": 0, "category_id": 1, "score": 1.0, "bbox": a["bbox"]} for a in doc["annotations"]]
    metrics = evaluate(doc, results, iou_types=("bbox",), verbose=False)
    assert metrics["bbox"]["AP"] == 1.0
    assert [a["id"] for a in doc["annotations"]] == [0, 1]  # the caller's dict is untouched


def test_empty_results_give_zero_and_say_so(shapes_gt, capsys):
    metrics = evaluate(shapes_gt, [])
    for m in metrics.values():
        assert m["AP"] == m["AP50"] == m["AR100"] == 0.0
        assert all(v in (0.0, -1.0) for v in m.values())
    out = capsys.readouterr().out
    assert out.count("no detections") == 2 and out.count("Average Precision") == 12


def test_img_ids_restricts_the_evaluation(shapes_gt):
    """Evaluating images 0..4 with exact predictions for just those images scores 1, not a recall loss."""
    ids = list(range(5))
    anns = [a for a in shapes_gt.dataset["annotations"] if a["image_id"] in ids]
    assert evaluate(shapes_gt, gt_as_results(anns), img_ids=ids, verbose=False)["segm"]["AP"] == 1.0
    with pytest.raises(MaskrtError, match="not among the evaluated images"):
        evaluate(shapes_gt, gt_as_results(shapes_gt.dataset["annotations"]), img_ids=ids, verbose=False)


@pytest.mark.parametrize("doc, message", [
    ([], "expected a JSON object"),
    ({"images": []}, "no 'annotations' list"),
    ({"images": [], "annotations": [], "categories": []}, "lists no images"),
    ({"images": [{"id": 1}], "annotations": [], "categories": []}, "every image needs"),
    ({"images": [{"id": 1, "file_name": "a", "height": 2, "width": 2}], "categories": [],
      "annotations": [{"image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1]}]}, "not in 'images'"),
])
def test_bad_ground_truth_is_a_one_line_error(doc, message):
    with pytest.raises(MaskrtError, match=message) as info:
        load_coco(doc)
    assert "\n" not in str(info.value)


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(MaskrtError, match="not found"):
        load_coco(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MaskrtError, match="not valid JSON"):
        load_coco(tmp_path / "bad.json")


def test_bad_results_are_refused(shapes_gt):
    ann = shapes_gt.dataset["annotations"][0]
    good = gt_as_results([ann])[0]
    with pytest.raises(MaskrtError, match="RLE segmentation"):
        evaluate(shapes_gt, [{k: v for k, v in good.items() if k != "segmentation"}], verbose=False)
    wrong_size = dict(good, segmentation=encode_masks(np.ones((1, 5, 5), bool))[0])
    with pytest.raises(MaskrtError, match="mask of size"):
        evaluate(shapes_gt, [wrong_size], verbose=False)
    with pytest.raises(MaskrtError, match="unknown IoU type"):
        evaluate(shapes_gt, [good], iou_types=("keypoints",), verbose=False)
