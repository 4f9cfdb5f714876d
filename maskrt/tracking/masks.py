"""Instance masks as crops: a bool array over an integer region of the image, as maskrt's paste
makes them (kernels.PastedInstances.crop / regions), moved with their objects and compared by IoU."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class MaskCrop:
    """One instance's mask inside its region.

    region: (x0, y0, x1, y1) ints in image pixels, exclusive ends; may reach outside the image
    (a carried mask) and may be empty (x1 <= x0 or y1 <= y0).
    mask: bool [max(y1 - y0, 0), max(x1 - x0, 0)], the mask over that region (zero outside it).
    """

    region: tuple[int, int, int, int]
    mask: np.ndarray
    area: int = field(init=False)  # foreground pixels

    def __post_init__(self) -> None:
        region = tuple(int(v) for v in self.region)
        if len(region) != 4:
            raise ValueError(f"a mask region is (x0, y0, x1, y1), got {self.region!r}")
        mask = np.asarray(self.mask, dtype=np.bool_)
        expected = (max(region[3] - region[1], 0), max(region[2] - region[0], 0))
        if mask.shape != expected:
            raise ValueError(f"mask shape {mask.shape} does not fit region {region} (expected {expected})")
        object.__setattr__(self, "region", region)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "area", int(np.count_nonzero(mask)))

    @classmethod
    def from_full(cls, mask: np.ndarray) -> "MaskCrop":
        """The crop of a full-image mask bool [H, W] to its foreground's bounding region."""
        mask = np.asarray(mask, dtype=np.bool_)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            return cls((0, 0, 0, 0), np.zeros((0, 0), dtype=np.bool_))
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        return cls((x0, y0, x1, y1), mask[y0:y1, x0:x1])

    def to_full(self, height: int, width: int) -> np.ndarray:
        """bool [height, width]: the crop placed in the image, cut at the image's edges."""
        out = np.zeros((height, width), dtype=np.bool_)
        x0, y0, x1, y1 = self.region
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if cx1 > cx0 and cy1 > cy0:
            out[cy0:cy1, cx0:cx1] = self.mask[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        return out


def carry_mask(crop: MaskCrop, from_box: np.ndarray, to_box: np.ndarray) -> MaskCrop:
    """The mask an object would show if its box moved from `from_box` to `to_box` (xyxy float [4]).

    The region's corners follow the affine map taking from_box onto to_box (per-axis scale and
    shift) and are rounded to pixels; the mask is resampled to the new region's size by nearest
    neighbour (pixel centres), so a region of unchanged size is a pure move. A degenerate
    from_box (zero width or height) keeps that axis' scale at 1.
    """
    x0, y0, x1, y1 = crop.region
    nx0, nx1 = _map_span(x0, x1, from_box[0], from_box[2], to_box[0], to_box[2])
    ny0, ny1 = _map_span(y0, y1, from_box[1], from_box[3], to_box[1], to_box[3])
    rows = _nearest(crop.mask.shape[0], ny1 - ny0)
    cols = _nearest(crop.mask.shape[1], nx1 - nx0)
    mask = crop.mask if rows is None and cols is None else crop.mask[_all(rows)][:, _all(cols)]
    return MaskCrop((nx0, ny0, nx1, ny1), mask)


def mask_iou(a: Sequence[MaskCrop], b: Sequence[MaskCrop]) -> np.ndarray:
    """Pairwise mask IoU: float64 [len(a), len(b)]; pixels are counted only where regions overlap."""
    out = np.zeros((len(a), len(b)))
    if not len(a) or not len(b):
        return out
    ra = np.array([c.region for c in a], dtype=np.int64)
    rb = np.array([c.region for c in b], dtype=np.int64)
    x0 = np.maximum(ra[:, None, 0], rb[None, :, 0])
    y0 = np.maximum(ra[:, None, 1], rb[None, :, 1])
    x1 = np.minimum(ra[:, None, 2], rb[None, :, 2])
    y1 = np.minimum(ra[:, None, 3], rb[None, :, 3])
    for i, j in zip(*np.nonzero((x1 > x0) & (y1 > y0))):
        window = (x0[i, j], y0[i, j], x1[i, j], y1[i, j])
        inter = np.count_nonzero(_window(a[i], window) & _window(b[j], window))
        union = a[i].area + b[j].area - inter
        out[i, j] = inter / union if union else 0.0
    return out


def _map_span(lo: int, hi: int, src_lo: float, src_hi: float, dst_lo: float, dst_hi: float) -> tuple[int, int]:
    """Integer span [lo, hi) mapped by the 1-D affine map taking [src_lo, src_hi] onto [dst_lo, dst_hi]."""
    src, dst = float(src_hi - src_lo), float(dst_hi - dst_lo)
    scale = dst / src if src > 0 else 1.0
    new_lo = _round(dst_lo + (lo - src_lo) * scale)
    new_hi = _round(dst_lo + (hi - src_lo) * scale)
    return new_lo, max(new_hi, new_lo)


def _round(value: float) -> int:
    return int(np.floor(value + 0.5))


def _nearest(size: int, new_size: int) -> np.ndarray | None:
    """Source indices int [new_size] sampling `size` pixels by nearest neighbour; None: unchanged size."""
    if new_size == size:
        return None
    return np.minimum(((np.arange(new_size) + 0.5) * (size / max(new_size, 1))).astype(np.int64), size - 1)


def _all(index: np.ndarray | None) -> np.ndarray | slice:
    return slice(None) if index is None else index


def _window(crop: MaskCrop, window: tuple[int, int, int, int]) -> np.ndarray:
    """The crop's pixels inside `window` (x0, y0, x1, y1), which lies inside its region."""
    x0, y0, _, _ = crop.region
    wx0, wy0, wx1, wy1 = window
    return crop.mask[wy0 - y0:wy1 - y0, wx0 - x0:wx1 - x0]
