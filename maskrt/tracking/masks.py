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
    def _trusted(cls, region: tuple[int, int, int, int], mask: np.ndarray, area: int) -> "MaskCrop":
        """A crop from values already known to be consistent (int region, bool mask of its shape,
        its foreground count), made without checking or counting."""
        crop = object.__new__(cls)
        for name, value in (("region", region), ("mask", mask), ("area", area)):
            object.__setattr__(crop, name, value)
        return crop

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
    return carry_masks([crop], np.asarray(from_box)[None], np.asarray(to_box)[None])[0]


def carry_masks(crops: Sequence[MaskCrop], from_boxes: np.ndarray, to_boxes: np.ndarray) -> list[MaskCrop]:
    """carry_mask for N crops at once: from_boxes, to_boxes float [N, 4] xyxy."""
    if not len(crops):
        return []
    regions = _carried_regions(np.array([c.region for c in crops], dtype=np.float64),
                               np.asarray(from_boxes, dtype=np.float64), np.asarray(to_boxes, dtype=np.float64))
    return [_resampled(crop, tuple(region)) for crop, region in zip(crops, regions.tolist())]


def mask_iou(a: Sequence[MaskCrop], b: Sequence[MaskCrop], min_iou: float | np.ndarray = 0.0) -> np.ndarray:
    """Pairwise mask IoU: float64 [len(a), len(b)].

    Pixels are counted only for pairs whose regions overlap and whose IoU can reach min_iou
    (a float, or float [len(b)] per column), bounded by the regions' overlap and the two areas;
    the other pairs are 0. So IoU >= min_iou is exact, and faster with a higher min_iou.
    """
    out = np.zeros((len(a), len(b)))
    if not len(a) or not len(b):
        return out
    region_a, region_b = np.array([c.region for c in a]), np.array([c.region for c in b])
    area_a, area_b = np.array([c.area for c in a], dtype=np.float64), np.array([c.area for c in b], dtype=np.float64)
    x0, y0, x1, y1 = _overlaps(region_a, region_b)
    most = np.minimum(np.minimum(area_a[:, None], area_b[None, :]), (x1 - x0).clip(0) * (y1 - y0).clip(0))
    union = area_a[:, None] + area_b[None, :] - most
    bound = np.divide(most, union, out=np.zeros(most.shape), where=union > 0)
    i, j = np.nonzero((most > 0) & (bound >= min_iou))
    window = np.stack([y0[i, j], y1[i, j], x0[i, j], x1[i, j]], axis=1)  # [P, 4] rows then columns
    in_a = (window - region_a[i][:, [1, 1, 0, 0]]).tolist()
    in_b = (window - region_b[j][:, [1, 1, 0, 0]]).tolist()
    masks_a, masks_b = [c.mask for c in a], [c.mask for c in b]
    pairs = zip(i.tolist(), j.tolist(), in_a, in_b)
    inter = np.array([_common(masks_a[p], sa, masks_b[q], sb) for p, q, sa, sb in pairs], dtype=np.float64)
    out[i, j] = inter / (area_a[i] + area_b[j] - inter)
    return out


def _common(mask_a: np.ndarray, window_a: list[int], mask_b: np.ndarray, window_b: list[int]) -> int:
    """Pixels set in both masks over one window, given in each mask's own (row0, row1, col0, col1)."""
    ra0, ra1, ca0, ca1 = window_a
    rb0, rb1, cb0, cb1 = window_b
    return int(np.count_nonzero(mask_a[ra0:ra1, ca0:ca1] & mask_b[rb0:rb1, cb0:cb1]))


def _overlaps(ra: np.ndarray, rb: np.ndarray) -> tuple[np.ndarray, ...]:
    """(x0, y0, x1, y1), each int [N, M]: the intersections of regions ra int [N, 4] and rb int [M, 4]
    (empty where x1 <= x0 or y1 <= y0)."""
    return (np.maximum(ra[:, None, 0], rb[None, :, 0]), np.maximum(ra[:, None, 1], rb[None, :, 1]),
            np.minimum(ra[:, None, 2], rb[None, :, 2]), np.minimum(ra[:, None, 3], rb[None, :, 3]))


def _carried_regions(regions: np.ndarray, from_boxes: np.ndarray, to_boxes: np.ndarray) -> np.ndarray:
    """Regions float [N, 4] mapped by the affine maps taking from_boxes onto to_boxes (float [N, 4]
    xyxy), rounded: int64 [N, 4] (x1 >= x0, y1 >= y0)."""
    src = from_boxes[:, 2:] - from_boxes[:, :2]
    dst = to_boxes[:, 2:] - to_boxes[:, :2]
    scale = np.tile(np.divide(dst, src, out=np.ones_like(dst), where=src > 0), 2)
    mapped = to_boxes[:, [0, 1, 0, 1]] + (regions - from_boxes[:, [0, 1, 0, 1]]) * scale
    out = np.floor(mapped + 0.5).astype(np.int64)
    out[:, 2:] = np.maximum(out[:, 2:], out[:, :2])
    return out


def _resampled(crop: MaskCrop, region: tuple[int, int, int, int]) -> MaskCrop:
    """`crop` over `region`: the same mask if the size is unchanged, else resampled by nearest neighbour."""
    x0, y0, x1, y1 = region
    height, width = crop.mask.shape
    if (y1 - y0, x1 - x0) == (height, width):
        return MaskCrop._trusted(region, crop.mask, crop.area)
    mask = crop.mask[_nearest(height, y1 - y0)][:, _nearest(width, x1 - x0)]
    return MaskCrop._trusted(region, mask, int(np.count_nonzero(mask)))


def _nearest(size: int, new_size: int) -> np.ndarray:
    """Source indices int64 [new_size] sampling `size` pixels by nearest neighbour (pixel centres)."""
    return np.minimum(((np.arange(new_size) + 0.5) * (size / max(new_size, 1))).astype(np.int64), size - 1)
