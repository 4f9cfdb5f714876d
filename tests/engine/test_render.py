"""Mask blending from the id map: each covered pixel tinted once by the instance on top."""

from __future__ import annotations

import numpy as np

from maskrt.engine.render import blend_masks, draw_detections, instance_color
from tests.engine.test_detections import make


def test_blend_tints_each_pixel_with_the_top_instance_only():
    dets = make(n=6, seed=5)
    image = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    out = blend_masks(image, dets, alpha=0.5)
    masks = dets.masks  # scores descending: the first covering instance is on top
    for y, x in zip(*np.nonzero(masks.any(0))):
        top = int(np.argmax(masks[:, y, x]))
        want = np.round(image[y, x] * 0.5 + np.asarray(instance_color(top)) * 0.5)
        np.testing.assert_array_equal(out[y, x], want)
    np.testing.assert_array_equal(out[~masks.any(0)], image[~masks.any(0)])
    assert masks.sum(0).max() > 1  # the case under test: overlapping instances


def test_draw_on_no_detections_returns_the_image():
    dets = make(n=6).above(2.0)
    image = np.full((60, 80, 3), 7, np.uint8)
    np.testing.assert_array_equal(draw_detections(image, dets, ["a"] * 6), image)


def test_floats_that_agree_in_the_json_draw_the_same_pixels():
    """Boxes and scores that differ only below the JSON's rounding (3 decimals, 5) draw the same
    frame: an MP4 is reproducible wherever the JSON lines are (int or half-pixel boundaries
    straddled by 2e-7 px, a score straddling the 2-decimal label's rounding)."""
    from maskrt.engine.detections import Detections

    def dets(eps: float) -> Detections:
        boxes = np.array([[11.0 + eps, 20.5 + eps, 40.5 - eps, 51.0 - eps]], np.float64)
        return Detections(boxes, np.array([0.125 + eps]), np.array([1]), np.zeros((1, 28, 28), np.float32),
                          (60, 80))

    image = np.full((60, 80, 3), 30, np.uint8)
    below, above = draw_detections(image, dets(-1e-7), ["bg", "a"]), draw_detections(image, dets(1e-7), ["bg", "a"])
    np.testing.assert_array_equal(below, above)
