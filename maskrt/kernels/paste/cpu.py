"""Fast CPU mask paste: only each box's visible part is computed, with torchvision's exact numerics.

torchvision resizes every padded mask to its whole box with F.interpolate into a float32 image
per instance, then thresholds N full-size float images. Here each instance's visible rows and
columns get their bilinear indices and weights, one pass per instance produces the pasted
probabilities of the visible part only, and the bool result is written straight into the output.

Bit-exactness: on x86-64 builds of torch (AVX2/AVX-512 kernels) F.interpolate's bilinear path
for outputs with h + w > 128 computes, per axis, src = fma(scale, dst + 0.5, -0.5) clamped at 0
and value = fma(w0, v0, w1 * v1) (first along W, then along H). `resize_rows` reproduces that
(float64 products of float32 values are exact, then one rounding), so the booleans are identical:
one compiled pass per box (numba) over its visible rows and columns only, thresholded inside, the
W-resized source rows computed once (R50's 100 masks into 800x1333, one thread: 18.3 ms through
F.interpolate and a threshold pass, 8.1 ms this way). Smaller outputs (h + w <= 128) take another
code path inside torch; those boxes (at most 64x64) are resized with F.interpolate itself. At first
use the emulation is checked against F.interpolate on three probe sizes; if it does not match bit
for bit (another CPU or torch build), every box falls back to F.interpolate (exact, slower).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import glue_threads
from .._numba import compiled_on_first_use
from .common import (PastedInstances, background_value, check_inputs, check_mode, crop_offsets, detectron2_probs,
                     detectron2_regions, geometry, lazy_zeros, paint_priority)

SMALL_PATH_LIMIT = 128  # h + w at or below which torch's small-output interpolation path is used
THREADED_PIXELS = 1 << 18  # visible pixels below which the crops stay on the calling thread (~0.5 ms)
# Mean visible pixels per crop below which they stay on the calling thread whatever their total, torch
# on one thread: a small crop is a few GIL-holding numpy/torch calls, so two threads only take turns
# (100 masks into 320x320, ~3.6k px each: 5.2 -> 5.8 ms median, and 21 rounds of 650 over 2x the
# median instead of 3); from ~11k px a crop (100 masks into 1080p, 11k px each: 27.0 -> 23.5 ms; 41k:
# 49.6 -> 38.5 ms) they gain (measured with the crops in numpy and F.interpolate, before the compiled rows).
THREADED_CROP_PIXELS = 8192


def paste(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5,
          mode: str = "torchvision") -> Tensor:
    """Paste per-box mask probabilities into the image; same contract as the reference.

    masks: Tensor[N, M, M]; boxes: Tensor[N, 4] xyxy image pixels. Returns Tensor[N, H, W] bool,
    pasted probability > threshold ("torchvision") or >= threshold ("detectron2"). Boxes with
    NaN/inf coordinates give empty masks.
    """
    check_inputs(masks, boxes, height, width)
    check_mode(mode, threshold)
    n = masks.shape[0]
    # lazy_zeros: fresh zero pages, faulted in only inside the boxes (a full-size fill would cost
    # more than the paste itself), and no huge-page compaction stalls (see there).
    if background_value(threshold):
        view = np.ones((n, height, width), dtype=np.bool_)
    else:
        view = lazy_zeros((n, height, width))

    def write(i, region, crop):  # on the thread that made the crop: the fresh pages fault in there
        x0, y0, x1, y1 = region
        view[i, y0:y1, x0:x1] = crop

    _crops(mode, masks, boxes, height, width, threshold, sink=write)
    return torch.from_numpy(view)


def paste_id_map(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5,
                 scores: Tensor | None = None, mode: str = "torchvision") -> PastedInstances:
    """Fused paste: instance-id map Tensor[H, W] int32 (-1 = background, highest score on top)
    plus each instance's mask cropped to its clipped box; never materialises N full-size masks.

    masks: Tensor[N, M, M]; boxes: Tensor[N, 4]; scores: Tensor[N] or None (then lower index wins).
    threshold must be >= 0 (a negative one would make every background pixel foreground).
    mode: "torchvision" or "detectron2" (see paste).
    """
    check_inputs(masks, boxes, height, width)
    check_mode(mode, threshold)
    if background_value(threshold):
        raise ValueError(f"paste_id_map needs threshold >= 0, got {threshold}")
    n = masks.shape[0]
    geo = _small_op_geometry(masks, boxes, height, width) if mode == "torchvision" else None
    region = geo.region if geo is not None else detectron2_regions(boxes, height, width)
    offsets = crop_offsets(region)
    packed = np.zeros(int(offsets[-1]), dtype=np.bool_)
    id_map = np.full((height, width), -1, dtype=np.int32)
    starts = offsets.tolist()

    def pack(i, region, crop):  # on the thread that made the crop
        packed[starts[i] : starts[i + 1]] = crop.reshape(-1)

    # on the calling thread: the id map's crops gain nothing from the glue's threads (100 masks into
    # 1080p: 16.7 ms on one thread, 20.4 ms dealt to two; with the compiled rows 9.4 vs 10.6 ms, though
    # R50's larger boxes 10.2 vs 7.1 ms); the full-size stack's page faults do
    with glue_threads.limited_to(1):
        made = _crops(mode, masks, boxes, height, width, threshold, geo, region, sink=pack)
    crops = {i: (box, crop) for i, box, crop in made}
    rank = paint_priority(scores, n)
    for i in torch.argsort(rank, descending=True).tolist():  # lowest priority first, the top one last
        if i in crops:
            (x0, y0, x1, y1), crop = crops[i]
            id_map[y0:y1, x0:x1][crop] = i
    return PastedInstances(torch.from_numpy(id_map), region, torch.from_numpy(packed), offsets)


def _crops(mode, masks, boxes, height, width, threshold, geo=None, region=None, sink=None):
    """The instances' visible crops (see _visible_crops) under paste `mode`; sink(i, region, crop),
    when given, is called with each crop as soon as it is made (on the thread that made it)."""
    if mode == "detectron2":
        crops = list(_detectron2_crops(masks, boxes, height, width, threshold, region))
        for crop in crops if sink is not None else ():
            sink(*crop)
        return crops
    return _visible_crops(masks, boxes, height, width, threshold, geo, sink)


def _detectron2_crops(masks, boxes, height, width, threshold, region=None):
    """Yield (i, (x0, y0, x1, y1), np.ndarray bool) for each box with a non-empty detectron2 region:
    grid_sample of the region only, as detectron2's CPU path (one box per chunk); the same per
    pixel as the reference's whole-image sampling (each output pixel depends on its centre only)."""
    region = detectron2_regions(boxes, height, width) if region is None else region
    boxes = boxes.float()
    thr = torch.tensor(threshold, dtype=torch.float32)
    for i, (x0, y0, x1, y1) in enumerate(region.tolist()):
        if x1 > x0 and y1 > y0:
            probs = detectron2_probs(masks[i], boxes[i], torch.arange(y0, y1), torch.arange(x0, x1))
            yield i, (x0, y0, x1, y1), (probs >= thr).numpy()


def _visible_crops(masks, boxes, height, width, threshold, geo=None, sink=None):
    """[(i, (x0, y0, x1, y1), np.ndarray[y1 - y0, x1 - x0] bool)] for instances with a visible part,
    in index order, computed on the glue's threads (glue_threads.map_balanced, by visible area;
    none inside glue_threads.limited_to(1), nor for small crops: THREADED_CROP_PIXELS);
    sink(i, region, crop), when given, is called there with each crop (writing it out on the thread
    that made it: a fresh output's page faults are shared by the threads too).

    The per-box work is the compiled rows (resize_rows) or, for small boxes, one-thread torch: many
    small torch ops on torch's own pool would each wake it, which costs milliseconds per op when
    the other core is busy.
    """
    geo = geo or _small_op_geometry(masks, boxes, height, width)
    exact = emulation_matches_torch()
    padded = geo.padded.numpy()
    thr = np.float32(threshold)  # torch compares a float32 tensor with the threshold in float32
    shown = [(i, region, box, hw) for i, (region, box, hw) in
             enumerate(zip(geo.region.tolist(), geo.box.tolist(), geo.out_hw.tolist()))
             if region[2] > region[0] and region[3] > region[1]]

    def crop(instance):
        i, (x0, y0, x1, y1), (bx0, by0, _, _), (h, w) = instance
        if h + w <= SMALL_PATH_LIMIT or not exact:
            full = F.interpolate(geo.padded[i][None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            above = full.numpy()[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] > thr
        else:
            above = resize_rows(padded[i], h, w, (y0 - by0, y1 - by0), (x0 - bx0, x1 - bx0), thr)
        made = i, (x0, y0, x1, y1), above
        if sink is not None:
            sink(*made)
        return made

    areas = [(r[2] - r[0]) * (r[3] - r[1]) for _, r, _, _ in shown]
    if sum(areas) >= THREADED_CROP_PIXELS * len(areas):
        return glue_threads.map_balanced(crop, shown, areas, min_cost=THREADED_PIXELS)
    # small crops: on this thread, and torch's tiny ops on it too (its pool's wake-ups gave 10 rounds
    # in 1450 over 2x the median of 100 masks into 320x320, none on one thread; same median)
    with glue_threads.single_threaded_torch():
        return [crop(instance) for instance in shown]


def _small_op_geometry(masks: Tensor, boxes: Tensor, height: int, width: int):
    """common.geometry with torch on one thread: its ops on N boxes and N x M x M masks are tiny, and
    waking torch's pool for them put rare rounds of a small paste at over twice its median."""
    with glue_threads.single_threaded_torch():
        return geometry(masks, boxes, height, width)


def resize_rows(mask: np.ndarray, h: int, w: int, rows: tuple[int, int], cols: tuple[int, int],
                threshold: np.float32 | None = None) -> np.ndarray:
    """Rows rows[0]:rows[1] and columns cols[0]:cols[1] of F.interpolate(mask, (h, w), bilinear,
    align_corners=False) for h + w > SMALL_PATH_LIMIT, bit-identical to torch's (module docstring):
    float32 [rows, cols], or with `threshold` bool (value > threshold, as torch compares float32).

    mask: float32 [Mp, Mp]. One compiled pass (`_bilinear_rows`): each axis's taps, each source row
    the crop reads resized along W once, then each output row from its two source rows."""
    out = np.empty((max(rows[1] - rows[0], 0), max(cols[1] - cols[0], 0)), np.bool_)
    probs = np.empty(out.shape if threshold is None else (0, 0), np.float32)
    if out.size:  # the kernel reads its first and last row's taps
        thr = np.float32(0.0 if threshold is None else threshold)
        _bilinear_kernel()(np.ascontiguousarray(mask, np.float32), h, w, rows[0], cols[0], thr, out, probs)
    return out if threshold is not None else probs


def _bilinear_rows(mask, h, w, r0, c0, thr, out, probs):  # pragma: no cover - compiled by numba
    """out[r, c] = value > thr (and probs[r, c] = value unless probs is empty) for output pixel
    (r0 + r, c0 + c) of mask resized to (h, w). Per axis, output index d reads src = fma(scale,
    d + 0.5, -0.5) clamped at 0 (scale = in / out in float32), taps i0 = min(int(src), in - 1),
    i1 = i0 + 1 below the last row/column, weights (1 - lam, lam), lam = clip(src - i0, 0, 1); value =
    fma(w0, v0, w1 * v1) along W, then along H. fma: the float64 product of float32 values is
    exact, the sum rounded once to float64 and then to float32 (as the former numpy emulation)."""
    rows, cols = out.shape[0], out.shape[1]
    taps_i = np.empty((2, max(rows, cols), 2), np.int64)
    taps_w = np.empty((2, max(rows, cols), 2), np.float32)
    for axis in range(2):
        size_in, size_out, first, n = (mask.shape[0], h, r0, rows) if axis == 0 else (mask.shape[1], w, c0, cols)
        scale = np.float32(size_in) / np.float32(size_out)
        for k in range(n):
            d = np.float32(first + k) + np.float32(0.5)
            src = max(np.float32(np.float64(scale) * np.float64(d) - 0.5), np.float32(0.0))
            i0 = min(np.int64(src), size_in - 1)
            lam = min(max(src - np.float32(i0), np.float32(0.0)), np.float32(1.0))
            taps_i[axis, k, 0], taps_i[axis, k, 1] = i0, i0 + 1 if i0 < size_in - 1 else i0
            taps_w[axis, k, 0], taps_w[axis, k, 1] = np.float32(1.0) - lam, lam
    low, high = taps_i[0, 0, 0], taps_i[0, rows - 1, 1]
    along_w = np.empty((high - low + 1, cols), np.float32)  # the source rows this crop reads, resized along W
    for y in range(low, high + 1):
        for c in range(cols):
            a, b = taps_i[1, c, 0], taps_i[1, c, 1]
            along_w[y - low, c] = np.float32(np.float64(taps_w[1, c, 0]) * np.float64(mask[y, a])
                                             + np.float64(taps_w[1, c, 1] * mask[y, b]))
    row = np.empty(cols, np.float32)
    for r in range(rows):
        top, bottom = along_w[taps_i[0, r, 0] - low], along_w[taps_i[0, r, 1] - low]
        w0, w1 = np.float64(taps_w[0, r, 0]), taps_w[0, r, 1]
        for c in range(cols):
            row[c] = np.float32(w0 * np.float64(top[c]) + np.float64(w1 * bottom[c]))
            out[r, c] = row[c] > thr
        if probs.shape[0]:
            probs[r] = row


_bilinear_kernel = compiled_on_first_use(_bilinear_rows)


@functools.lru_cache(maxsize=1)
def emulation_matches_torch() -> bool:
    """True when `resize_rows` reproduces this torch build's F.interpolate bit for bit."""
    g = torch.Generator().manual_seed(0)
    for m, h, w in ((30, 200, 173), (16, 64, 70), (30, 1, 300)):
        mask = torch.rand(m, m, generator=g)
        ref = F.interpolate(mask[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        ours = resize_rows(mask.numpy(), h, w, (0, h), (0, w))
        if not np.array_equal(ref.numpy(), ours) or not np.array_equal(ref.numpy() > 0.5, resize_rows(
                mask.numpy(), h, w, (0, h), (0, w), np.float32(0.5))):
            return False
    return True
