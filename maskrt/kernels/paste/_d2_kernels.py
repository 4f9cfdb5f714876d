"""Triton kernel of the paste op's detectron2 mode (imported lazily by paste/triton.py).

Kept apart from _kernels.paste_kernel (torchvision's paste) but with the same arguments, in
TensorRT's AOT order, and the same tiling and writes (`_kernels.write_bits`).
"""

import triton
import triton.language as tl

from ._kernels import COORD_LIMIT, FLT_MAX, _fma, _regions_at, columns, write_bits


@triton.jit
def _region(boxes_ptr, i, live, height, width):
    """common.detectron2_regions for box i: the float32 box (x1, y1, x2, y2) and (x0, y0, x1, y1)
    its pixel region floor(x1) - 1 .. ceil(x2) + 1 clipped to the image, exclusive ends; empty
    (and the box replaced by the unit box) for a box with a non-finite coordinate, x2 <= x1 or y2 <= y1,
    and when not live (nothing read)."""
    b = boxes_ptr + i.to(tl.int64) * 4
    x1f, y1f = tl.load(b + 0, mask=live, other=0.0).to(tl.float32), tl.load(b + 1, mask=live, other=0.0).to(tl.float32)
    x2f, y2f = tl.load(b + 2, mask=live, other=0.0).to(tl.float32), tl.load(b + 3, mask=live, other=0.0).to(tl.float32)
    finite = (tl.abs(x1f) <= FLT_MAX) & (tl.abs(y1f) <= FLT_MAX) & (tl.abs(x2f) <= FLT_MAX) & (tl.abs(y2f) <= FLT_MAX)
    ok = finite & (x2f > x1f) & (y2f > y1f)
    cx1 = tl.minimum(tl.maximum(tl.where(ok, x1f, 0.0), -COORD_LIMIT), COORD_LIMIT)
    cy1 = tl.minimum(tl.maximum(tl.where(ok, y1f, 0.0), -COORD_LIMIT), COORD_LIMIT)
    cx2 = tl.minimum(tl.maximum(tl.where(ok, x2f, 0.0), -COORD_LIMIT), COORD_LIMIT)
    cy2 = tl.minimum(tl.maximum(tl.where(ok, y2f, 0.0), -COORD_LIMIT), COORD_LIMIT)
    x0 = tl.where(ok, tl.maximum(tl.floor(cx1) - 1.0, 0.0).to(tl.int32), 0)
    y0 = tl.where(ok, tl.maximum(tl.floor(cy1) - 1.0, 0.0).to(tl.int32), 0)
    x1 = tl.where(ok, tl.minimum(tl.ceil(cx2) + 1.0, width.to(tl.float32)).to(tl.int32), 0)
    y1 = tl.where(ok, tl.minimum(tl.ceil(cy2) + 1.0, height.to(tl.float32)).to(tl.int32), 0)
    # an empty region computes nothing: its taps only need to stay finite (the unit box)
    return cx1, cy1, tl.where(ok, cx2, 1.0), tl.where(ok, cy2, 1.0), x0, y0, x1, y1


@triton.jit
def _taps(pix, lo, hi, half_m, EMULATE: tl.constexpr):
    """Bilinear taps of pixels `pix` along one axis of the box [lo, hi] (detectron2 + F.grid_sample,
    torch's CPU arithmetic): g = (pix + 0.5 - lo) / (hi - lo) * 2 - 1 (IEEE division), mask
    coordinate u = fma(g + 1, M / 2, -0.5); taps floor(u) and floor(u) + 1 with weights
    (1 - frac, frac)."""
    g = tl.math.div_rn(pix.to(tl.float32) + 0.5 - lo, hi - lo) * 2.0 - 1.0
    u = _fma(g + 1.0, tl.zeros(g.shape, tl.float32) + half_m, tl.full(g.shape, -0.5, tl.float32), EMULATE)
    u0 = tl.floor(u)
    frac = u - u0
    i0 = u0.to(tl.int32)
    return i0, i0 + 1, 1.0 - frac, frac


@triton.jit
def _mask(base, iy, ix, m, ok):
    """Element (iy, ix) of the M x M mask as float32; 0 outside it (grid_sample's zero padding)."""
    inside = ok & ((iy >= 0) & (iy < m))[:, None] & ((ix >= 0) & (ix < m))[None, :]
    return tl.load(base + (iy * m)[:, None] + ix[None, :], mask=inside, other=0.0).to(tl.float32)


@triton.jit(do_not_specialize=["n", "m", "height", "width", "threshold_bits"])
def d2_paste_kernel(masks_ptr, boxes_ptr, canvas_ptr, regions_ptr, offsets_ptr, priority_ptr, n, m, height, width,
                    threshold_bits, out_ptr, packed_ptr, keymap_ptr,
                    FUSED: tl.constexpr, EMULATE: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Instance program_id(0), image rows [BLOCK_H * program_id(1), +BLOCK_H): detectron2's paste
    (paste/common.detectron2_probs), foreground = probability >= threshold. Arguments and outputs
    as _kernels.paste_kernel. The value is torch's CPU grid_sample sum, rounded as it rounds it:
    nw * v_nw, then fused multiply-adds of the ne, sw and se taps (tl.fma on a GPU, float64
    emulation under the interpreter); weights nw = (1 - fy) * (1 - fx), ne = (1 - fy) * fx, ..."""
    i = tl.program_id(0)
    live = i < n
    threshold = threshold_bits.to(tl.float32, bitcast=True)
    bx1, by1, bx2, by2, x0, y0, x1, y1 = _region(boxes_ptr, i, live, height, width)
    if FUSED:  # the host's regions, from which the packed offsets were computed
        x0, y0 = _regions_at(regions_ptr, i, live, 0), _regions_at(regions_ptr, i, live, 1)
        x1, y1 = _regions_at(regions_ptr, i, live, 2), _regions_at(regions_ptr, i, live, 3)
    rows = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    r_in = (rows >= y0) & (rows < y1)
    half_m = m.to(tl.float32) * 0.5
    iy0, iy1, wy0, wy1 = _taps(rows, by1, by2, half_m, EMULATE)
    base = masks_ptr + i.to(tl.int64) * m * m
    vis_w = tl.maximum(x1 - x0, 0)
    col0, ncols = columns(x0, y0, y1, vis_w, width, live, FUSED, BLOCK_H)
    for cb in range(tl.cdiv(ncols, BLOCK_W)):
        cols = col0 + cb * BLOCK_W + tl.arange(0, BLOCK_W)
        ok = r_in[:, None] & ((cols >= x0) & (cols < x1))[None, :]
        ix0, ix1, wx0, wx1 = _taps(cols, bx1, bx2, half_m, EMULATE)
        val = _mask(base, iy0, ix0, m, ok) * (wy0[:, None] * wx0[None, :])
        val = _fma(_mask(base, iy0, ix1, m, ok), wy0[:, None] * wx1[None, :], val, EMULATE)
        val = _fma(_mask(base, iy1, ix0, m, ok), wy1[:, None] * wx0[None, :], val, EMULATE)
        val = _fma(_mask(base, iy1, ix1, m, ok), wy1[:, None] * wx1[None, :], val, EMULATE)
        bit = val >= threshold
        write_bits(bit, ok, i, rows, cols, x0, y0, vis_w, height, width, threshold, offsets_ptr, priority_ptr,
                   out_ptr, packed_ptr, keymap_ptr, FUSED, BLOCK_H, BLOCK_W)
