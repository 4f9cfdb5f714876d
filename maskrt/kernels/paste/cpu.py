"""Fast CPU mask paste: only each box's visible part is computed, with torchvision's exact numerics.

torchvision resizes every padded mask to its whole box with F.interpolate into a float32 image
per instance, then thresholds N full-size float images. Here each instance's visible rows and
columns get their bilinear indices and weights, one pass per instance produces the pasted
probabilities of the visible part only, and the bool result is written straight into the output.

Bit-exactness: on x86-64 builds of torch (AVX2/AVX-512 kernels) F.interpolate's bilinear path
for outputs with h + w > 128 computes, per axis, src = fma(scale, dst + 0.5, -0.5) clamped at 0
and value = fma(w0, v0, w1 * v1) (first along W, then along H). `_resize_rows` reproduces that
with float64 fused multiply-adds (exact products, one rounding), so the booleans are identical.
Smaller outputs (h + w <= 128) take another code path inside torch; those boxes (at most 64x64)
are resized with F.interpolate itself. At first use the emulation is checked against
F.interpolate on two probe sizes; if it does not match bit for bit (another CPU or torch build),
every box falls back to F.interpolate (exact, slower).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import PastedInstances, background_value, check_inputs, crop_offsets, geometry, paint_priority

SMALL_PATH_LIMIT = 128  # h + w at or below which torch's small-output interpolation path is used


def paste(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5) -> Tensor:
    """Paste per-box mask probabilities into the image; same contract as the reference.

    masks: Tensor[N, M, M]; boxes: Tensor[N, 4] xyxy image pixels. Returns Tensor[N, H, W] bool,
    pasted probability > threshold. Boxes with NaN/inf coordinates give empty masks.
    """
    check_inputs(masks, boxes, height, width)
    n = masks.shape[0]
    out = torch.full((n, height, width), background_value(threshold), dtype=torch.bool)
    for i, (x0, y0, x1, y1), crop in _visible_crops(masks, boxes, height, width, threshold):
        out[i, y0:y1, x0:x1] = crop
    return out


def paste_id_map(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5,
                 scores: Tensor | None = None) -> PastedInstances:
    """Fused paste: instance-id map Tensor[H, W] int32 (-1 = background, highest score on top)
    plus each instance's mask cropped to its clipped box; never materialises N full-size masks.

    masks: Tensor[N, M, M]; boxes: Tensor[N, 4]; scores: Tensor[N] or None (then lower index wins).
    threshold must be >= 0 (a negative one would make every background pixel foreground).
    """
    check_inputs(masks, boxes, height, width)
    if background_value(threshold):
        raise ValueError(f"paste_id_map needs threshold >= 0, got {threshold}")
    n = masks.shape[0]
    geo = geometry(masks, boxes, height, width)
    offsets = crop_offsets(geo.region)
    packed = torch.zeros(int(offsets[-1]), dtype=torch.bool)
    id_map = torch.full((height, width), -1, dtype=torch.int32)
    crops = {}
    for i, (x0, y0, x1, y1), crop in _visible_crops(masks, boxes, height, width, threshold, geo):
        packed[int(offsets[i]) : int(offsets[i + 1])] = crop.reshape(-1)
        crops[i] = ((x0, y0, x1, y1), crop)
    rank = paint_priority(scores, n)
    for i in torch.argsort(rank, descending=True).tolist():  # lowest priority first, the top one last
        if i in crops:
            (x0, y0, x1, y1), crop = crops[i]
            id_map[y0:y1, x0:x1].masked_fill_(crop, i)
    return PastedInstances(id_map, geo.region, packed, offsets)


def _visible_crops(masks, boxes, height, width, threshold, geo=None):
    """Yield (i, (x0, y0, x1, y1), Tensor[y1 - y0, x1 - x0] bool) for instances with a visible part."""
    geo = geo or geometry(masks, boxes, height, width)
    exact = emulation_matches_torch()
    hw = geo.out_hw.tolist()
    for i, ((x0, y0, x1, y1), (bx0, by0, _, _), (h, w)) in enumerate(
            zip(geo.region.tolist(), geo.box.tolist(), hw)):
        if x1 <= x0 or y1 <= y0:
            continue
        rows = torch.arange(y0 - by0, y1 - by0)
        cols = torch.arange(x0 - bx0, x1 - bx0)
        if h + w <= SMALL_PATH_LIMIT or not exact:
            full = F.interpolate(geo.padded[i][None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            probs = full[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
        else:
            probs = resize_rows(geo.padded[i], h, w, rows, cols)
        yield i, (x0, y0, x1, y1), probs > threshold


def axis_weights(out_size: int, in_size: int, dst: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Bilinear (align_corners=False) taps for output indices `dst` (Tensor[K] int64) of an axis
    resized from in_size to out_size: (i0, i1 int64, w0, w1 float32), with fused src arithmetic."""
    scale = torch.tensor(float(in_size), dtype=torch.float32) / torch.tensor(float(out_size), dtype=torch.float32)
    d = dst.to(torch.float32) + 0.5
    src = (scale.double() * d.double() - 0.5).float().clamp(min=0.0)
    i0 = src.to(torch.int64).clamp(max=in_size - 1)
    lam = (src - i0.to(torch.float32)).clamp(0.0, 1.0)
    i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
    return i0, i1, 1.0 - lam, lam


def resize_rows(mask: Tensor, h: int, w: int, rows: Tensor, cols: Tensor) -> Tensor:
    """Rows `rows` and columns `cols` of F.interpolate(mask, (h, w), bilinear) for h + w > 128.

    mask: Tensor[Mp, Mp] float32. Returns Tensor[len(rows), len(cols)] float32, bit-identical
    to the corresponding part of torch's result (see the module docstring).
    """
    y0, y1, wy0, wy1 = axis_weights(h, mask.shape[0], rows)
    x0, x1, wx0, wx1 = axis_weights(w, mask.shape[1], cols)
    needed = torch.unique(torch.cat([y0, y1]))
    sub = mask[needed]  # only the source rows this crop reads
    t = _fma(wx0, sub[:, x0], wx1 * sub[:, x1])  # [rows needed, len(cols)]
    pos0 = torch.searchsorted(needed, y0)
    pos1 = torch.searchsorted(needed, y1)
    return _fma(wy0[:, None], t[pos0], wy1[:, None] * t[pos1])


def _fma(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """float32 a * b + c with one rounding (float64 product is exact; c is float32)."""
    return torch.addcmul(c.double(), a.double(), b.double()).float()


@functools.lru_cache(maxsize=1)
def emulation_matches_torch() -> bool:
    """True when `resize_rows` reproduces this torch build's F.interpolate bit for bit."""
    g = torch.Generator().manual_seed(0)
    for m, h, w in ((30, 200, 173), (16, 64, 70), (30, 1, 300)):
        mask = torch.rand(m, m, generator=g)
        ref = F.interpolate(mask[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        ours = resize_rows(mask, h, w, torch.arange(h), torch.arange(w))
        if not torch.equal(ref, ours):
            return False
    return True
