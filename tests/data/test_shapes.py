"""Tests of maskrt.data.shapes: determinism, exact masks, tight boxes, variety."""

from __future__ import annotations

import math

import numpy as np
import pytest

from maskrt.data import CLASS_NAMES, decode_flat_ids, iter_scenes, make_scene, render_scene
from maskrt.data.geometry import (
    CIRCLE,
    SQUARE,
    STAR,
    TRIANGLE,
    Shape,
    resolve_visibility,
    shape_mask,
)

SIZE = (72, 96)


def _scene(seed: int, paint: str = "textured", **kw):
    return render_scene(np.random.default_rng(seed), *SIZE, paint=paint, **kw)


def test_class_names():
    assert CLASS_NAMES == ["circle", "square", "triangle", "star"]
    assert (CIRCLE, SQUARE, TRIANGLE, STAR) == (1, 2, 3, 4)


def test_scene_types_and_shapes():
    s = _scene(0)
    n = s.num_instances
    assert s.image.shape == (*SIZE, 3) and s.image.dtype == np.uint8
    assert s.masks.shape == (n, *SIZE) and s.masks.dtype == bool
    assert s.labels.shape == (n,) and s.labels.dtype == np.int64
    assert s.boxes.shape == (n, 4) and s.boxes.dtype == np.float32
    assert s.object_ids.shape == (n,) and s.colors.shape == (n, 3)
    assert n >= 1 and set(s.labels.tolist()) <= {1, 2, 3, 4}


def test_same_seed_identical_different_seed_differs():
    a, b, c = _scene(5), _scene(5), _scene(6)
    assert a.image.tobytes() == b.image.tobytes()
    assert np.array_equal(a.masks, b.masks)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.image, c.image)
    assert make_scene(3, 2, SIZE).image.tobytes() == make_scene(3, 2, SIZE).image.tobytes()
    assert not np.array_equal(make_scene(3, 2, SIZE).image, make_scene(3, 1, SIZE).image)


@pytest.mark.parametrize("seed", range(6))
def test_flat_render_pixels_equal_masks(seed):
    """In flat mode every pixel carries the id of the instance whose mask holds it."""
    flat, textured = _scene(seed, "flat"), _scene(seed)
    ids = decode_flat_ids(flat.image)
    assert np.array_equal(flat.masks, textured.masks)
    assert np.array_equal(flat.labels, textured.labels)
    expected = np.zeros(SIZE, dtype=np.int64)
    for k, m in enumerate(flat.masks):
        expected[m] = k + 1
    assert np.array_equal(ids, expected)
    assert not (flat.masks.sum(0) > 1).any(), "visible masks must not overlap"


@pytest.mark.parametrize("seed", range(6))
def test_textured_pixels_follow_masks(seed):
    """Outside all masks the image is the bare background; inside mask k every pixel
    is object k's colour plus bounded texture, and differs from the background."""
    max_texture = 24.0
    scene, bg = _scene(seed, max_texture=max_texture), _scene(seed, "background")
    union = scene.masks.any(0)
    assert np.array_equal(scene.image[~union], bg.image[~union])
    for k, m in enumerate(scene.masks):
        dev = np.abs(scene.image[m].astype(int) - scene.colors[k].astype(int))
        assert dev.max() <= max_texture + 1
        change = np.abs(scene.image[m].astype(int) - bg.image[m].astype(int)).sum(1)
        assert change.mean() > 40


def test_boxes_are_tight():
    for scene in iter_scenes(1, 5, SIZE):
        for m, box in zip(scene.masks, scene.boxes):
            ys, xs = np.nonzero(m)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_min_area_respected_and_small_objects_not_drawn():
    for scene in iter_scenes(2, 6, SIZE, paint="flat", min_area=30):
        assert (scene.masks.sum((1, 2)) >= 30).all()
        assert decode_flat_ids(scene.image).max() == scene.num_instances


def test_variety_classes_border_cuts_and_sizes():
    labels, border, areas, counts = set(), 0, [], []
    for scene in iter_scenes(0, 25, SIZE, paint="flat"):
        labels |= set(scene.labels.tolist())
        m = scene.masks
        edges = m[:, 0].any(1) | m[:, -1].any(1) | m[:, :, 0].any(1) | m[:, :, -1].any(1)
        border += int(edges.sum())
        areas += m.sum((1, 2)).tolist()
        counts.append(scene.num_instances)
    assert labels == {1, 2, 3, 4}
    assert border >= 3
    assert min(areas) < 100 and max(areas) > 0.08 * SIZE[0] * SIZE[1]
    assert min(counts) < max(counts)


def test_size_range():
    sizes = {s.image.shape[:2] for s in iter_scenes(4, 6, ((40, 60), (50, 70)))}
    assert len(sizes) > 1
    assert all(40 <= h <= 60 and 50 <= w <= 70 for h, w in sizes)


def test_geometry_exact_areas():
    square = shape_mask(Shape(SQUARE, 10.0, 10.0, 5 * math.sqrt(2), 0.0), 20, 20)
    assert square.sum() == 100 and square[5:15, 5:15].all()
    circle = shape_mask(Shape(CIRCLE, 50.0, 50.0, 20.0, 0.0), 100, 100)
    assert abs(circle.sum() - math.pi * 400) < 40
    tri = shape_mask(Shape(TRIANGLE, 50.0, 50.0, 30.0, 0.0), 100, 100)
    assert abs(tri.sum() - 3 * math.sqrt(3) / 4 * 900) < 40


def test_star_is_non_convex_and_rotates():
    star = shape_mask(Shape(STAR, 50.0, 50.0, 40.0, 0.0), 100, 100)
    rotated = shape_mask(Shape(STAR, 50.0, 50.0, 40.0, 0.3), 100, 100)
    ys, xs = np.nonzero(star)
    hull_box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
    assert star.sum() < 0.5 * hull_box  # a convex pentagon would fill ~0.65
    assert not np.array_equal(star, rotated)
    assert star[50, 50] and not star[12, 30]


def test_border_crop_and_visibility_drop():
    cut = shape_mask(Shape(CIRCLE, 0.0, 0.0, 10.0, 0.0), 30, 30)
    assert 0 < cut.sum() < math.pi * 100 / 3
    big = shape_mask(Shape(SQUARE, 15.0, 15.0, 20.0, 0.0), 30, 30)
    small = shape_mask(Shape(CIRCLE, 15.0, 15.0, 3.0, 0.0), 30, 30)
    keep, visible = resolve_visibility([small, big], min_area=20)
    assert keep == [1] and np.array_equal(visible[0], big)
    keep, visible = resolve_visibility([big, small], min_area=20)
    assert keep == [0, 1] and np.array_equal(visible[0], big & ~small)
