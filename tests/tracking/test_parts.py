"""The tracker's parts: the Kalman filter's steps, lapjv-style assignment, box and mask geometry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskrt.tracking import MaskCrop, carry_mask, kalman, mask_iou
from maskrt.tracking.assignment import match
from maskrt.tracking.boxes import box_iou, xyah_to_xyxy, xyxy_to_xyah


def moving_state() -> tuple[np.ndarray, np.ndarray]:
    """Two tracks, initiated then corrected once so that they have velocities."""
    mean, cov = kalman.initiate(np.array([[100.0, 50.0, 0.5, 80.0], [300.0, 200.0, 1.0, 40.0]]))
    mean, cov = kalman.predict(mean, cov, 1.0)
    return kalman.update(mean, cov, np.array([[106.0, 47.0, 0.5, 82.0], [296.0, 204.0, 1.0, 40.0]]))


def test_whole_steps_are_repeated_single_steps():
    mean, cov = moving_state()
    once = (mean, cov)
    for _ in range(3):
        once = kalman.predict(*once, 1.0)
    three = kalman.predict(mean, cov, 3.0)
    np.testing.assert_allclose(three[0], once[0])
    np.testing.assert_allclose(three[1], once[1])


def test_a_fractional_step_moves_the_mean_proportionally_and_adds_noise_linearly():
    mean, cov = moving_state()
    half_mean, half_cov = kalman.predict(mean, cov, 2.5)
    np.testing.assert_allclose(half_mean[:, :4], mean[:, :4] + 2.5 * mean[:, 4:])
    two = kalman.predict(mean, cov, 2.0)
    three = kalman.predict(mean, cov, 3.0)
    assert (np.diagonal(two[1], axis1=1, axis2=2) < np.diagonal(half_cov, axis1=1, axis2=2)).all()
    assert (np.diagonal(half_cov, axis1=1, axis2=2) < np.diagonal(three[1], axis1=1, axis2=2)).all()
    np.testing.assert_allclose(kalman.predict_mean(mean, 2.5), half_mean)


def test_steps_within_the_snap_are_whole():
    assert kalman.split_steps(0.9996) == (1, 0.0)
    assert kalman.split_steps(2.0004) == (2, 0.0)
    whole, fraction = kalman.split_steps(2.25)
    assert whole == 2 and fraction == pytest.approx(0.25)


def test_frozen_height_velocity_is_zeroed_before_predicting():
    mean, cov = moving_state()
    mean[:, 7] = 3.0
    out, _ = kalman.predict(mean, cov, 2.0, frozen_height=np.array([True, False]))
    assert out[0, 3] == mean[0, 3] and out[0, 7] == 0.0
    assert out[1, 3] == pytest.approx(mean[1, 3] + 6.0)


def test_update_pulls_the_state_to_the_measurement_and_shrinks_uncertainty():
    mean, cov = kalman.initiate(np.array([[100.0, 50.0, 0.5, 80.0]]))
    predicted = kalman.predict(mean, cov, 1.0)
    new_mean, new_cov = kalman.update(*predicted, np.array([[110.0, 50.0, 0.5, 80.0]]))
    assert 100.0 < new_mean[0, 0] < 110.0 and new_mean[0, 4] > 0
    assert (np.diagonal(new_cov[0]) < np.diagonal(predicted[1][0])).all()
    np.testing.assert_allclose(new_cov[0], new_cov[0].T, atol=1e-12)


def test_assignment_keeps_pairs_below_the_limit_with_lapjv_semantics():
    # "assign all, then drop pairs over the limit" would keep (0, 1) and (1, 0)
    pairs, rows, cols = match(np.array([[0.1, 0.45], [0.45, 0.9]]), 0.5)
    assert pairs.tolist() == [[0, 0]] and rows.tolist() == [1] and cols.tolist() == [1]
    pairs, _, _ = match(np.array([[0.5]]), 0.5)  # a cost equal to the limit may match
    assert pairs.tolist() == [[0, 0]]
    pairs, rows, cols = match(np.array([[0.3, 0.9], [0.2, 0.95], [0.99, 0.6]]), 0.8)
    assert pairs.tolist() == [[1, 0], [2, 1]] and rows.tolist() == [0] and cols.tolist() == []


def test_assignment_of_nothing():
    pairs, rows, cols = match(np.zeros((0, 3)), 0.8)
    assert pairs.shape == (0, 2) and rows.tolist() == [] and cols.tolist() == [0, 1, 2]


def test_box_conversions_round_trip_and_iou():
    boxes = np.array([[10.0, 20.0, 50.0, 100.0], [0.0, 0.0, 10.0, 10.0]])
    np.testing.assert_allclose(xyxy_to_xyah(boxes)[0], [30.0, 60.0, 0.5, 80.0])
    np.testing.assert_allclose(xyah_to_xyxy(xyxy_to_xyah(boxes)), boxes)
    iou = box_iou(boxes, np.array([[10.0, 20.0, 50.0, 60.0], [5.0, 5.0, 15.0, 15.0], [1, 1, 0, 0]]))
    np.testing.assert_allclose(iou, [[0.5, 0.0, 0.0], [0.0, 25 / 175, 0.0]])


def test_mask_crop_checks_its_shape_and_counts_its_area():
    crop = MaskCrop((2, 3, 6, 5), np.ones((2, 4), np.bool_))
    assert crop.area == 8 and crop.region == (2, 3, 6, 5)
    with pytest.raises(ValueError, match="does not fit region"):
        MaskCrop((2, 3, 6, 5), np.ones((4, 2), np.bool_))


def test_full_mask_round_trip():
    full = np.zeros((20, 30), np.bool_)
    full[4:9, 10:13] = True
    full[6, 20] = True
    crop = MaskCrop.from_full(full)
    assert crop.region == (10, 4, 21, 9)
    np.testing.assert_array_equal(crop.to_full(20, 30), full)
    assert MaskCrop.from_full(np.zeros((5, 5))).area == 0


def test_to_full_cuts_at_the_image_edges():
    crop = MaskCrop((-2, -1, 3, 2), np.ones((3, 5), np.bool_))
    full = crop.to_full(4, 2)
    assert full.sum() == 2 * 2 and full[:2, :2].all()


def test_carry_mask_moves_an_unchanged_size():
    mask = np.random.default_rng(0).random((6, 8)) < 0.5
    crop = MaskCrop((10, 20, 18, 26), mask)
    moved = carry_mask(crop, np.array([10.2, 20.0, 18.2, 26.0]), np.array([15.2, 17.0, 23.2, 23.0]))
    assert moved.region == (15, 17, 23, 23)
    np.testing.assert_array_equal(moved.mask, mask)


def test_carry_mask_scales_by_nearest_neighbour():
    mask = np.array([[1, 0], [0, 1]], np.bool_)
    crop = MaskCrop((0, 0, 2, 2), mask)
    bigger = carry_mask(crop, np.array([0.0, 0.0, 2.0, 2.0]), np.array([10.0, 10.0, 14.0, 16.0]))
    assert bigger.region == (10, 10, 14, 16)
    np.testing.assert_array_equal(bigger.mask, np.kron(mask, np.ones((3, 2), np.bool_)))
    assert bigger.area == 12
    gone = carry_mask(crop, np.array([0.0, 0.0, 2.0, 2.0]), np.array([5.0, 5.0, 5.0, 9.0]))
    assert gone.mask.shape == (4, 0) and gone.area == 0


def full_iou(a: MaskCrop, b: MaskCrop, size: int) -> float:
    fa, fb = a.to_full(size, size), b.to_full(size, size)
    union = np.logical_or(fa, fb).sum()
    return float(np.logical_and(fa, fb).sum() / union) if union else 0.0


crops = st.builds(
    lambda x, y, w, h, seed: MaskCrop((x, y, x + w, y + h), np.random.default_rng(seed).random((h, w)) < 0.6),
    st.integers(0, 30), st.integers(0, 30), st.integers(0, 12), st.integers(0, 12), st.integers(0, 1000))


@settings(max_examples=60, deadline=None)
@given(st.lists(crops, min_size=1, max_size=4), st.lists(crops, min_size=1, max_size=4),
       st.floats(0.0, 1.0))
def test_mask_iou_equals_the_full_image_iou_where_it_can_reach_min_iou(a, b, min_iou):
    expected = np.array([[full_iou(x, y, 42) for y in b] for x in a])
    np.testing.assert_allclose(mask_iou(a, b), expected)
    pruned = mask_iou(a, b, min_iou)
    reaching = expected >= min_iou
    np.testing.assert_allclose(pruned[reaching], expected[reaching])
    assert (pruned[~reaching] < min_iou).all()


def test_tracking_needs_neither_torch_nor_more_than_numpy_scipy_yaml():
    code = ("import sys, maskrt.tracking, maskrt.tracking.metrics; "
            "heavy = {'torch', 'torchvision', 'openvino', 'cv2', 'numba'} & set(sys.modules); "
            "sys.exit(sorted(heavy) or 0)")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": ""})
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_duplicates_are_what_class_agnostic_nms_suppresses(threshold):
    import torch
    from torchvision.ops import nms

    from maskrt.tracking.boxes import duplicates

    rng = np.random.default_rng(int(threshold * 10))
    xy = rng.uniform(0, 60, size=(30, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 30, size=(30, 2))], axis=1)
    boxes = np.concatenate([boxes, boxes[:10] + rng.uniform(-3, 3, size=(10, 4))])  # near-copies too
    scores = rng.permutation(np.linspace(0.1, 0.99, 40)).astype(np.float32)  # distinct: no tie to order
    kept = nms(torch.from_numpy(boxes), torch.from_numpy(scores).double(), threshold).numpy()
    expected = np.ones(40, bool)
    expected[kept] = False
    dropped = duplicates(boxes, scores, threshold)
    np.testing.assert_array_equal(dropped, expected)
    assert 0 < dropped.sum() < 40
    assert not duplicates(boxes, scores, 1.0).any()
