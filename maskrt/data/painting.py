"""Appearance of synthetic scenes: backgrounds, object colours, textures and painting.

Objects are painted on exactly the pixels of a given mask (see :func:`paint_objects`),
with a colour plus a bounded texture, so masks and pixels always agree.  Images are
``(H, W, 3)`` uint8 RGB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from maskrt.data.geometry import Shape


@dataclass(frozen=True)
class Appearance:
    """How an object is painted: base colour plus a bounded luminance texture.

    ``color`` is an integer-valued float ``(3,)`` RGB array; ``tile`` a ``(T, T)``
    array in ``[-1, 1]`` mapped onto the object's own (rotating) frame; ``shade`` a
    unit ``(2,)`` direction of a linear shading ramp.  A painted pixel never differs
    from ``color`` by more than :attr:`max_deviation` in any channel.
    """

    color: np.ndarray
    tile: np.ndarray
    shade: np.ndarray
    noise_amp: float
    shade_amp: float

    @property
    def max_deviation(self) -> float:
        """Upper bound of ``|pixel - color|`` per channel (before rounding)."""
        return self.noise_amp + self.shade_amp



def render_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Textured ``(H, W, 3)`` uint8 background: gradient, smooth noise, optional stripes,
    soft anisotropic blobs and thin line segments, plus pixel noise.  None of these
    distractors is a circle, square, triangle or star with a hard edge."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    base = rng.uniform(40, 215, 3)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (xs * math.cos(direction) + ys * math.sin(direction)) / max(height, width)
    img = base + ramp[..., None] * rng.uniform(-60, 60, 3)
    img += _smooth_noise(rng, height, width, amp=rng.uniform(0, 18))
    if rng.random() < 0.4:
        period = rng.uniform(6, 40)
        phase = (xs * math.cos(direction + 1.0) + ys * math.sin(direction + 1.0)) / period
        img += np.sin(2 * math.pi * phase)[..., None] * rng.uniform(-20, 20, 3)
    for _ in range(int(rng.integers(0, 4))):
        img += _soft_blob(rng, xs, ys, height, width)
    img += rng.normal(0.0, rng.uniform(0, 6), img.shape)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return _draw_lines(rng, out, int(rng.integers(0, 4)))


def _smooth_noise(rng: np.random.Generator, height: int, width: int, amp: float) -> np.ndarray:
    """Low-frequency colour noise: a coarse random grid bilinearly upsampled to ``(H, W, 3)``."""
    gh, gw = int(rng.integers(2, 7)), int(rng.integers(2, 7))
    coarse = rng.normal(0.0, amp, (gh, gw, 3))
    yi, xi = np.linspace(0, gh - 1, height), np.linspace(0, gw - 1, width)
    y0, x0 = np.floor(yi).astype(int), np.floor(xi).astype(int)
    y1, x1 = np.minimum(y0 + 1, gh - 1), np.minimum(x0 + 1, gw - 1)
    fy, fx = (yi - y0)[:, None, None], (xi - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x1] * fx
    bottom = coarse[y1][:, x0] * (1 - fx) + coarse[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def _soft_blob(
    rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, height: int, width: int
) -> np.ndarray:
    """An anisotropic Gaussian bump of random colour (soft edges, so never a shape)."""
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    sx, sy = rng.uniform(0.05, 0.3, 2) * min(height, width)
    theta = rng.uniform(0, math.pi)
    u = (xs - cx) * math.cos(theta) + (ys - cy) * math.sin(theta)
    v = -(xs - cx) * math.sin(theta) + (ys - cy) * math.cos(theta)
    return np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))[..., None] * rng.uniform(-35, 35, 3)


def _draw_lines(rng: np.random.Generator, img: np.ndarray, count: int) -> np.ndarray:
    """Draw ``count`` thin random line segments (hard-edged distractors) onto ``img``."""
    if count == 0:
        return img
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    h, w = img.shape[:2]
    for _ in range(count):
        x = rng.uniform(0, w, 2)
        y = rng.uniform(0, h, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.line([(x[0], y[0]), (x[1], y[1])], fill=colour, width=int(rng.integers(1, 3)))
    return np.asarray(pil).copy()


def sample_color(
    rng: np.random.Generator, refs: Sequence[np.ndarray], min_dist: float, tries: int = 64
) -> np.ndarray:
    """Integer RGB colour (float ``(3,)``) at least ``min_dist`` (L2) from every colour in
    ``refs``; after ``tries`` rejections the best candidate seen is returned."""
    best, best_dist = np.zeros(3), -1.0
    for _ in range(tries):
        colour = rng.integers(0, 256, 3).astype(np.float64)
        dist = min((float(np.linalg.norm(colour - r)) for r in refs), default=math.inf)
        if dist >= min_dist:
            return colour
        if dist > best_dist:
            best, best_dist = colour, dist
    return best


def sample_appearance(
    rng: np.random.Generator,
    refs: Sequence[np.ndarray],
    min_contrast: float = 90.0,
    max_texture: float = 24.0,
    texture_prob: float = 0.75,
) -> Appearance:
    """Random appearance whose colour contrasts with ``refs`` (see :func:`sample_color`);
    with probability ``texture_prob`` the object gets a mild noise tile plus shading
    whose combined amplitude is at most ``max_texture``."""
    colour = sample_color(rng, refs, min_contrast)
    tile = rng.uniform(-1.0, 1.0, (8, 8))
    phi = rng.uniform(0, 2 * math.pi)
    amps = rng.uniform(0, max_texture / 2, 2) * (rng.random() < texture_prob)
    shade = np.array([math.cos(phi), math.sin(phi)])
    return Appearance(colour, tile, shade, float(amps[0]), float(amps[1]))


def flat_appearance(index: int) -> Appearance:
    """Untextured appearance encoding instance ``index`` (0-based) for ``paint="flat"``."""
    code = index + 1
    colour = np.array([code % 256, (code // 256) % 256, 255], dtype=np.float64)
    return Appearance(colour, np.zeros((1, 1)), np.zeros(2), 0.0, 0.0)


def decode_flat_ids(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` int64 map of a ``paint="flat"`` image: 0 = background, ``k + 1`` = instance k."""
    img = image.astype(np.int64)
    return np.where(img[..., 2] == 255, img[..., 0] + 256 * img[..., 1], 0)


def texture_values(shape: Shape, app: Appearance, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Texture offsets at pixels ``(ys, xs)``, evaluated in the object's own frame so the
    texture moves and rotates with the object; ``|value| <= app.max_deviation``."""
    dx, dy = xs + 0.5 - shape.cx, ys + 0.5 - shape.cy
    c, s = math.cos(shape.angle), math.sin(shape.angle)
    u, v = (c * dx + s * dy) / shape.radius, (c * dy - s * dx) / shape.radius
    n = app.tile.shape[0]
    iu = np.clip(np.floor((u + 1) * n / 2), 0, n - 1).astype(int)
    iv = np.clip(np.floor((v + 1) * n / 2), 0, n - 1).astype(int)
    ramp = np.clip(u * app.shade[0] + v * app.shade[1], -1.0, 1.0)
    return app.noise_amp * app.tile[iv, iu] + app.shade_amp * ramp


def paint_objects(
    background: np.ndarray,
    shapes: Sequence[Shape],
    visible: Sequence[np.ndarray],
    appearances: Sequence[Appearance],
) -> np.ndarray:
    """Paint each object on exactly its visible-mask pixels; returns a new uint8 image."""
    canvas = background.astype(np.float64)
    for shape, mask, app in zip(shapes, visible, appearances):
        ys, xs = np.nonzero(mask)
        canvas[ys, xs] = app.color + texture_values(shape, app, xs, ys)[:, None]
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
