"""Exact rasterisation of the four shape classes, occlusion and boxes.

Conventions: pixel ``(row y, col x)`` covers ``[x, x+1) x [y, y+1)`` and belongs to a
shape iff its centre ``(x + 0.5, y + 0.5)`` lies inside the continuous shape (boundary
included); no anti-aliasing.  Masks are ``(H, W)`` bool, boxes ``xyxy`` float32 in
pixel-edge coordinates (``x2 = max col + 1``).  Category ids are 1-based:
``CLASS_NAMES[i]`` has id ``i + 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CLASS_NAMES: list[str] = ["circle", "square", "triangle", "star"]
"""Class names; ``CLASS_NAMES[i]`` has COCO category id ``i + 1``."""

CIRCLE, SQUARE, TRIANGLE, STAR = 1, 2, 3, 4
STAR_INNER_RATIO = 0.45
"""Inner/outer radius ratio of the 5-pointed star (non-convex)."""


@dataclass(frozen=True)
class Shape:
    """Continuous geometry of one object, in pixel units (x right, y down).

    ``radius`` is the circumradius (centre to vertex; the radius for circles) and
    ``angle`` a rotation in radians.  Every point of the shape is within ``radius``
    of ``(cx, cy)``.
    """

    label: int
    cx: float
    cy: float
    radius: float
    angle: float



def polygon_vertices(shape: Shape) -> np.ndarray:
    """Vertices ``(K, 2)`` (x, y) of a square, triangle or star; raises for circles."""
    r, a = shape.radius, shape.angle
    if shape.label == SQUARE:
        angles, radii = a + math.pi / 4 + np.arange(4) * math.pi / 2, np.full(4, r)
    elif shape.label == TRIANGLE:
        angles, radii = a - math.pi / 2 + np.arange(3) * 2 * math.pi / 3, np.full(3, r)
    elif shape.label == STAR:
        angles = a - math.pi / 2 + np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, r * STAR_INNER_RATIO)
    else:
        raise ValueError(f"label {shape.label} has no polygon")
    return np.stack([shape.cx + radii * np.cos(angles), shape.cy + radii * np.sin(angles)], 1)


def points_in_polygon(px: np.ndarray, py: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Even-odd ray-casting test of points ``(px, py)`` (any equal shapes) against ``verts``."""
    inside = np.zeros(px.shape, dtype=bool)
    x1, y1 = verts[-1]
    for x2, y2 in verts:
        if y1 != y2:
            crosses = (y1 > py) != (y2 > py)
            x_cross = x1 + (py - y1) * ((x2 - x1) / (y2 - y1))
            inside ^= crosses & (px < x_cross)
        x1, y1 = x2, y2
    return inside


def shape_mask(shape: Shape, height: int, width: int) -> np.ndarray:
    """Full (unoccluded) ``(H, W)`` bool mask of ``shape``, cropped to the image."""
    mask = np.zeros((height, width), dtype=bool)
    verts = None if shape.label == CIRCLE else polygon_vertices(shape)
    if verts is None:
        lo = (shape.cx - shape.radius, shape.cy - shape.radius)
        hi = (shape.cx + shape.radius, shape.cy + shape.radius)
    else:
        lo, hi = verts.min(0), verts.max(0)
    x0, y0 = max(0, math.floor(lo[0])), max(0, math.floor(lo[1]))
    x1, y1 = min(width, math.ceil(hi[0]) + 1), min(height, math.ceil(hi[1]) + 1)
    if x0 >= x1 or y0 >= y1:
        return mask
    px, py = np.meshgrid(np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5)
    if verts is None:
        inside = (px - shape.cx) ** 2 + (py - shape.cy) ** 2 <= shape.radius**2
    else:
        inside = points_in_polygon(px, py, verts)
    mask[y0:y1, x0:x1] = inside
    return mask


def resolve_visibility(
    full_masks: Sequence[np.ndarray], min_area: int
) -> tuple[list[int], list[np.ndarray]]:
    """Drop objects whose visible area is below ``min_area``; return kept indices and masks.

    ``full_masks`` are in back-to-front order; later masks occlude earlier ones.
    Dropping an object only enlarges what the others show, so repeating until nothing
    is dropped terminates with every kept visible mask of at least ``min_area`` pixels.
    """
    keep = list(range(len(full_masks)))
    while True:
        visible = _visible_masks([full_masks[i] for i in keep])
        small = {i for i, v in zip(keep, visible) if int(v.sum()) < min_area}
        if not small:
            return keep, visible
        keep = [i for i in keep if i not in small]


def _visible_masks(full_masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Visible part of each mask after occlusion by all later masks."""
    visible: list[np.ndarray] = [np.empty(0)] * len(full_masks)
    covered: np.ndarray | None = None
    for i in range(len(full_masks) - 1, -1, -1):
        m = full_masks[i]
        visible[i] = m if covered is None else m & ~covered
        covered = m.copy() if covered is None else covered | m
    return visible


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight ``(N, 4)`` float32 xyxy boxes (pixel edges) of ``(N, H, W)`` bool masks."""
    boxes = np.zeros((masks.shape[0], 4), dtype=np.float32)
    for i, m in enumerate(masks):
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if rows.size:
            boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


def sample_shapes(
    rng: np.random.Generator,
    height: int,
    width: int,
    num_objects: tuple[int, int] = (1, 8),
    min_size: float = 8.0,
    max_size_frac: float = 0.6,
) -> list[Shape]:
    """Random shapes, back to front: size (diameter) log-uniform in
    ``[min_size, max_size_frac * min(H, W)]``, any rotation, centres up to half a radius
    outside the image so that some objects are cut by the border."""
    count = int(rng.integers(num_objects[0], num_objects[1] + 1))
    max_size = max(min_size, max_size_frac * min(height, width))
    shapes = []
    for _ in range(count):
        label = int(rng.integers(1, len(CLASS_NAMES) + 1))
        radius = 0.5 * math.exp(rng.uniform(math.log(min_size), math.log(max_size)))
        cx = rng.uniform(-0.5 * radius, width + 0.5 * radius)
        cy = rng.uniform(-0.5 * radius, height + 0.5 * radius)
        shapes.append(Shape(label, cx, cy, radius, rng.uniform(0.0, 2 * math.pi)))
    return shapes
