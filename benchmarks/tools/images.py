"""Deterministic test images for the benchmarks and the GPU check (numpy only: no pytest, no torch)."""

from __future__ import annotations

import numpy as np


def bench_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 RGB image with smooth structure (random weights still see 'objects')."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = rng.integers(0, 50, size=(height, width, 3)).astype(np.float32)
    for _ in range(8):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.05, 0.3) * max(height, width)
        img[((yy - cy) ** 2 + (xx - cx) ** 2) < r * r] += rng.uniform(60, 200, size=3)
    return img.clip(0, 255).astype(np.uint8)
