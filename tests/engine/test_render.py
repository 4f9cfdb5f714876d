"""Mask blending from the id map: each covered pixel tinted once by the instance on top."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_a_track_keeps_its_colour_and_shows_its_id():
    """With track ids an instance is coloured by its track, whatever its index in the frame; its
    label gains the id; an unconfirmed detection (-1) is grey; a carried one has no score."""
    from PIL import Image, ImageDraw, ImageFont

    from maskrt.engine.detections import Detections
    from maskrt.engine.render import UNTRACKED_COLOR

    probs = np.ones((2, 28, 28), np.float32)
    boxes = np.array([[5.0, 5.0, 25.0, 25.0], [40.0, 30.0, 70.0, 55.0]])
    image = np.full((60, 80, 3), 40, np.uint8)
    first = Detections(boxes, np.array([0.9, 0.8]), np.array([1, 1]), probs, (60, 80)).with_tracks([5, -1])
    second = Detections(boxes[::-1].copy(), np.array([0.95, 0.7]), np.array([1, 1]), probs, (60, 80)).with_tracks(
        [2, 5], [False, True])
    a, b = blend_masks(image, first), blend_masks(image, second)
    np.testing.assert_array_equal(a[15, 15], np.round(40 * 0.5 + np.asarray(instance_color(5)) * 0.5))  # track 5
    np.testing.assert_array_equal(b[15, 15], a[15, 15])  # track 5 again, now the second instance
    np.testing.assert_array_equal(b[45, 55], np.round(40 * 0.5 + np.asarray(instance_color(2)) * 0.5))
    np.testing.assert_array_equal(a[45, 55], np.round(40 * 0.5 + np.asarray(UNTRACKED_COLOR) * 0.5))

    def label_image(text, color, xy):  # the oracle: PIL draws the label as draw_detections should
        canvas = Image.new("RGB", (80, 60))
        draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
        left, top, right, bottom = draw.textbbox(xy, text, font=font)
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=(0, 0, 0))
        draw.text(xy, text, fill=color, font=font)
        return np.asarray(canvas), tuple(int(v) for v in (left - 1, top - 1, right + 1, bottom + 1))

    drawn = draw_detections(image, second, ["bg", "a"])
    want, (x0, y0, x1, y1) = label_image("a #5", instance_color(5), (5.0, 5.0))  # carried: no score
    np.testing.assert_array_equal(drawn[y0:y1 + 1, x0:x1 + 1], want[y0:y1 + 1, x0:x1 + 1])
    assert (drawn[y0 + 2:y1 - 1, x1 + 1] == 40).all()  # and the label ends there (the frame shows beyond it)
    drawn = draw_detections(image, first, ["bg", "a"])
    want, (x0, y0, x1, y1) = label_image("a #5 0.90", instance_color(5), (5.0, 5.0))
    np.testing.assert_array_equal(drawn[y0:y1 + 1, x0:x1 + 1], want[y0:y1 + 1, x0:x1 + 1])


# --- the one-pass renderer against PIL's own drawing (the oracle) ----------------------------------

def pil_frame(image, dets, classes, colors, fps=None):
    """The frame drawn per instance with PIL, as maskrt drew it before: the blend formula per
    pixel, PIL's rectangle (width 2) and default-font text on a black textbbox plate."""
    from PIL import Image, ImageDraw, ImageFont

    out = image.astype(np.float32)
    masks = dets.masks
    for i in reversed(range(len(dets))):  # the highest score ends on top
        out[masks[i]] = image[masks[i]].astype(np.float32) * 0.5 + np.asarray(colors[i], np.float32) * 0.5
    canvas = Image.fromarray(out.round().clip(0, 255).astype(np.uint8))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()

    def label(xy, text, color):
        left, top, right, bottom = draw.textbbox(xy, text, font=font)
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=(0, 0, 0))
        draw.text(xy, text, fill=color, font=font)

    for i in range(len(dets)):
        x1, y1, x2, y2 = (int(v) for v in dets.boxes[i])
        color = tuple(int(c) for c in colors[i])
        draw.rectangle((x1, y1, x2, y2), outline=color, width=2)
        label((x1, y1), f"{classes[int(dets.labels[i])]} {float(dets.scores[i]):.2f}", color)
    if fps is not None:
        label((4, 4), f"{fps:.1f} fps", (255, 255, 255))
    return np.asarray(canvas)


def integer_detections(n: int, size=(120, 160), seed: int = 3):
    """n detections with integer box corners (some reaching past the frame), distinct scores."""
    from maskrt.engine.detections import Detections

    g = np.random.default_rng(seed)
    xy = g.integers(-10, size[1] - 10, (n, 2)).astype(np.float64)
    xy[:, 1] = g.integers(-10, size[0] - 10, n)
    boxes = np.concatenate([xy, xy + g.integers(4, 60, (n, 2))], 1)
    scores = np.ascontiguousarray(np.sort(g.uniform(0.05, 1.0, n))[::-1])
    return Detections(boxes, scores, g.integers(1, 3, n), g.uniform(0, 1, (n, 28, 28)).astype(np.float32), size)


@pytest.mark.parametrize("colors", [None, "track"])
def test_frame_equals_pil_drawing_with_each_detections_colour(colors):
    dets = integer_detections(30)
    palette = (np.random.default_rng(9).integers(0, 256, (30, 3)) if colors == "track"
               else [instance_color(i) for i in range(30)])
    image = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    got = draw_detections(image, dets, ["bg", "a", "b"], fps=12.34,
                          colors=None if colors is None else palette)
    np.testing.assert_array_equal(got, pil_frame(image, dets, ["bg", "a", "b"], palette, fps=12.34))


def test_colors_must_be_one_rgb_row_per_detection():
    dets = integer_detections(4)
    with pytest.raises(ValueError, match=r"colors must be \[4, 3\]"):
        draw_detections(np.zeros((120, 160, 3), np.uint8), dets, ["bg", "a", "b"], colors=np.zeros((3, 3)))
