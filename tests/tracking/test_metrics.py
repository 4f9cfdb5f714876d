"""Tracking metrics on sequences small enough to score by hand (TrackEval agreement: test_metrics_goldens)."""

from __future__ import annotations

import numpy as np
import pytest

from maskrt.tracking import MaskCrop
from maskrt.tracking.metrics import Frame, evaluate

A, B = [0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]


def frames(*ids_per_frame, boxes=(A, B)) -> list[Frame]:
    return [Frame(np.array(ids), np.array(boxes[:len(ids)])) for ids in ids_per_frame]


def test_perfect_tracking_scores_one():
    gt = frames([1, 2], [1, 2], [1, 2])
    pred = frames([7, 9], [7, 9], [7, 9])  # any ids: only the correspondence matters
    m = evaluate(gt, pred).summary()
    assert m["HOTA"] == m["DetA"] == m["AssA"] == m["LocA"] == m["MOTA"] == m["IDF1"] == 1.0
    assert (m["CLR_TP"], m["IDSW"], m["MT"]) == (6, 0, 2)


def test_an_id_switch():
    """The predicted ids of the two objects swap for the last two of four frames."""
    gt = frames([1, 2], [1, 2], [1, 2], [1, 2])
    pred = frames([1, 2], [1, 2], [2, 1], [2, 1])
    m = evaluate(gt, pred)
    assert m.clear.idsw == 2 and m.clear.mota == pytest.approx((8 - 2) / 8)
    assert m.identity.idtp == 4 and m.identity.idf1 == pytest.approx(0.5)
    assert m.hota.deta[0] == 1.0 and m.hota.assa[0] == pytest.approx(1 / 3)  # each pair: 2 of 6 frames


def test_misses_false_positives_and_a_fragment():
    """Object 1 is missed on frame 2 (a false positive elsewhere instead), then found again."""
    gt = frames([1], [1], [1])
    pred = [Frame(np.array([5]), np.array([A])), Frame(np.array([6]), np.array([B])),
            Frame(np.array([5]), np.array([A]))]
    c = evaluate(gt, pred).clear
    assert (c.tp, c.fn, c.fp, c.idsw, c.frag) == (2, 1, 1, 0, 1)
    assert c.mota == pytest.approx((2 - 1) / 3)


def test_a_frame_without_predictions_is_no_fragment():
    """TrackEval's convention: a frame with no predictions at all counts its misses but leaves the
    matching's memory of the previous frame alone."""
    gt = frames([1], [1], [1])
    pred = [Frame(np.array([5]), np.array([A])), Frame(np.zeros(0, np.int64), np.zeros((0, 4))),
            Frame(np.array([5]), np.array([A]))]
    c = evaluate(gt, pred).clear
    assert (c.tp, c.fn, c.fp, c.frag) == (2, 1, 0, 0)


def test_localisation_below_alpha_is_a_miss():
    """IoU 0.5 matches for alpha <= 0.5 only: DetA is 1 on 10 alphas of 19, then 0."""
    gt = [Frame(np.array([1]), np.array([[0.0, 0.0, 10.0, 10.0]]))]
    pred = [Frame(np.array([1]), np.array([[0.0, 0.0, 10.0, 5.0]]))]
    h = evaluate(gt, pred).hota
    np.testing.assert_array_equal(h.deta, [1.0] * 10 + [0.0] * 9)
    np.testing.assert_allclose(h.loca, [0.5] * 10 + [1.0] * 9)  # no match at an alpha: TrackEval's LocA 1


def test_by_mask_uses_mask_iou():
    """Same boxes, disjoint masks: a match by box, none by mask."""
    left = MaskCrop((0, 0, 10, 10), np.tile(np.arange(10) < 5, (10, 1)))
    right = MaskCrop((0, 0, 10, 10), np.tile(np.arange(10) >= 5, (10, 1)))
    gt = [Frame(np.array([1]), np.array([A]), [left])]
    pred = [Frame(np.array([1]), np.array([A]), [right])]
    assert evaluate(gt, pred, by="box").clear.tp == 1
    assert evaluate(gt, pred, by="mask").clear.tp == 0


def test_an_empty_sequence_scores_zero():
    m = evaluate([], []).summary()
    assert m["HOTA"] == m["MOTA"] == m["IDF1"] == 0.0 and m["CLR_TP"] == 0


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="2 ground-truth frames but 1 predicted"):
        evaluate(frames([1], [1]), frames([1]))
    with pytest.raises(ValueError, match="twice in one frame"):
        evaluate(frames([1, 1]), frames([1]))
    with pytest.raises(ValueError, match="by must be"):
        evaluate(frames([1]), frames([1]), by="polygon")
