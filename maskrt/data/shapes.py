"""Synthetic "shapes" scenes whose instance masks are exact by construction.

Conventions
-----------
* Images are ``uint8`` RGB arrays of shape ``(H, W, 3)``.
* Pixel ``(row y, col x)`` covers the unit square ``[x, x+1) x [y, y+1)``.  A pixel
  belongs to a shape iff its centre ``(x + 0.5, y + 0.5)`` lies inside the continuous
  shape (boundary included).  No anti-aliasing is ever applied.
* Boxes are ``xyxy`` ``float32`` in pixel-edge coordinates: ``x1 = min col``,
  ``x2 = max col + 1`` (same for rows), so ``x2 - x1`` is the box width in pixels.
* Category ids are 1-based: ``CLASS_NAMES[i]`` has category id ``i + 1``.

Exactness
---------
A scene is built in three independent random streams split off the caller's
generator: *layout* (shapes, sizes, positions, rotations), *background* and *object
appearance* (colours, textures).  The visible mask of every object is computed from
the layout alone (later objects occlude earlier ones); objects whose visible area is
below ``min_area`` are removed **before** anything is drawn.  Each remaining object is
then painted on exactly its visible-mask pixels, so every annotated pixel is right and
no un-annotated shape is ever visible.  Because the layout stream does not depend on
the painting, ``paint="flat"`` (black background, one flat id colour per instance, see
:func:`decode_flat_ids`) and ``paint="background"`` (background only) give the same
masks as the default ``paint="textured"``; tests use them to check the pixels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from maskrt.data.geometry import (  # noqa: F401  (re-exported)
    CIRCLE,
    CLASS_NAMES,
    SQUARE,
    STAR,
    TRIANGLE,
    Shape,
    masks_to_boxes,
    resolve_visibility,
    sample_shapes,
    shape_mask,
)
from maskrt.data.painting import (  # noqa: F401  (re-exported)
    Appearance,
    decode_flat_ids,
    flat_appearance,
    paint_objects,
    render_background,
    sample_appearance,
)

PAINT_MODES = ("textured", "flat", "background")

SizeSpec = tuple[int, int] | tuple[tuple[int, int], tuple[int, int]]
"""``(H, W)`` or an inclusive range ``((h_min, h_max), (w_min, w_max))``."""


@dataclass
class Scene:
    """One rendered image and its exact instance annotations.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        masks: ``(N, H, W)`` bool visible masks (after occlusion and border cropping).
        labels: ``(N,)`` int64 category ids in ``1..4``.
        boxes: ``(N, 4)`` float32 tight xyxy boxes of ``masks`` (pixel edges).
        object_ids: ``(N,)`` int64 stable object identity (draw index in a still
            image, track id in a video).  Instances are in back-to-front draw order.
        colors: ``(N, 3)`` uint8 base fill colour of each instance.
    """

    image: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    object_ids: np.ndarray
    colors: np.ndarray

    @property
    def num_instances(self) -> int:
        """Number of annotated instances ``N``."""
        return int(self.labels.shape[0])


def build_scene(
    image: np.ndarray,
    visible: Sequence[np.ndarray],
    shapes: Sequence[Shape],
    object_ids: Sequence[int],
    appearances: Sequence[Appearance],
) -> Scene:
    """Assemble a :class:`Scene` from per-instance lists (all in draw order)."""
    h, w = image.shape[:2]
    masks = np.stack(visible) if visible else np.zeros((0, h, w), dtype=bool)
    colors = np.array([a.color for a in appearances], dtype=np.uint8).reshape(-1, 3)
    return Scene(
        image=image,
        masks=masks,
        labels=np.array([s.label for s in shapes], dtype=np.int64),
        boxes=masks_to_boxes(masks),
        object_ids=np.array(object_ids, dtype=np.int64),
        colors=colors,
    )


def split_rng(rng: np.random.Generator, count: int) -> list[np.random.Generator]:
    """``count`` independent generators seeded from ``rng`` (consumes ``rng`` draws only)."""
    return [np.random.default_rng(int(s)) for s in rng.integers(0, 2**63, size=count)]


def render_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    num_objects: tuple[int, int] = (1, 8),
    min_size: float = 8.0,
    max_size_frac: float = 0.6,
    min_area: int = 20,
    min_contrast: float = 90.0,
    max_texture: float = 24.0,
    paint: str = "textured",
) -> Scene:
    """Render one random scene of size ``(height, width)`` driven only by ``rng``.

    The same generator state gives byte-identical output.  ``num_objects`` is an
    inclusive range of objects sampled before occlusion culling (at least one instance
    survives unless ten layouts in a row lose all of them); ``min_size`` and
    ``max_size_frac`` bound object diameters; instances with fewer than ``min_area``
    visible pixels are never drawn.  ``paint`` is one of :data:`PAINT_MODES`.
    """
    if paint not in PAINT_MODES:
        raise ValueError(f"paint must be one of {PAINT_MODES}, got {paint!r}")
    layout_rng, bg_rng, obj_rng = split_rng(rng, 3)
    for _ in range(10):
        shapes = sample_shapes(layout_rng, height, width, num_objects, min_size, max_size_frac)
        full = [shape_mask(s, height, width) for s in shapes]
        keep, visible = resolve_visibility(full, min_area)
        if keep:
            break
    kept = [shapes[i] for i in keep]
    if paint == "flat":
        background = np.zeros((height, width, 3), dtype=np.uint8)
        apps = [flat_appearance(k) for k in range(len(kept))]
    else:
        background = render_background(bg_rng, height, width)
        apps = _scene_appearances(obj_rng, background, [full[i] for i in keep],
                                  min_contrast, max_texture)
    image = background if paint == "background" else paint_objects(background, kept, visible, apps)
    return build_scene(image, visible, kept, keep, apps)


def _scene_appearances(
    rng: np.random.Generator,
    background: np.ndarray,
    full_masks: Sequence[np.ndarray],
    min_contrast: float,
    max_texture: float,
) -> list[Appearance]:
    """Appearances contrasting with the local background and with overlapped objects."""
    apps: list[Appearance] = []
    for k, mask in enumerate(full_masks):
        refs = [background[mask].mean(0)]
        refs += [apps[j].color for j in range(k) if (full_masks[j] & mask).any()]
        apps.append(sample_appearance(rng, refs, min_contrast, max_texture))
    return apps


def sample_image_size(rng: np.random.Generator, size: SizeSpec) -> tuple[int, int]:
    """``(H, W)`` from a fixed size or an inclusive range ``((h0, h1), (w0, w1))``."""
    h, w = size
    if isinstance(h, (tuple, list)):
        return int(rng.integers(h[0], h[1] + 1)), int(rng.integers(w[0], w[1] + 1))
    return int(h), int(w)


def make_scene(seed: int, index: int, size: SizeSpec = (320, 320), **kwargs) -> Scene:
    """Scene ``index`` of the dataset ``seed`` (random access; ``seed, index >= 0``).

    ``kwargs`` are passed to :func:`render_scene`.
    """
    rng = np.random.default_rng([seed, index])
    height, width = sample_image_size(rng, size)
    return render_scene(rng, height, width, **kwargs)


def iter_scenes(seed: int, num: int, size: SizeSpec = (320, 320), **kwargs) -> Iterator[Scene]:
    """Yield ``make_scene(seed, i, size, **kwargs)`` for ``i in range(num)`` (in memory)."""
    for index in range(num):
        yield make_scene(seed, index, size, **kwargs)
