"""Triton kernel of the paste op (imported lazily by paste/triton.py; see there)."""

import triton
import triton.language as tl


@triton.jit
def _fma(a, b, c, EMULATE: tl.constexpr):
    """float32 a * b + c rounded once (the interpreter has no fused multiply-add: emulate in float64)."""
    if EMULATE:
        return (a.to(tl.float64) * b.to(tl.float64) + c.to(tl.float64)).to(tl.float32)
    else:
        return tl.fma(a, b, c)


@triton.jit
def _taps(dst, out_size, in_size, EMULATE: tl.constexpr):
    """Bilinear align_corners=False taps for output indices dst of an axis resized in_size -> out_size."""
    scale = in_size.to(tl.float32) / out_size.to(tl.float32)
    src = tl.maximum(_fma(scale, dst.to(tl.float32) + 0.5, tl.full(dst.shape, -0.5, tl.float32), EMULATE), 0.0)
    i0 = tl.minimum(src.to(tl.int32), in_size - 1)
    lam = tl.minimum(tl.maximum(src - i0.to(tl.float32), 0.0), 1.0)
    i1 = tl.where(i0 < in_size - 1, i0 + 1, i0)
    return i0, i1, 1.0 - lam, lam


@triton.jit
def paste_kernel(masks_ptr, geo_ptr, out_ptr, packed_ptr, offsets_ptr, keymap_ptr, priority_ptr,
                 height, width, mp, threshold,
                 FUSED: tl.constexpr, EMULATE: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Instance program_id(0), visible rows [BLOCK_H * program_id(1), +BLOCK_H) of its region.

    geo: Tensor[N, 8] int32 (x0, y0, x1, y1 region; box x1, box y1; out h, out w).
    Not FUSED: out[i, y, x] = pasted > threshold (uint8 view of a bool Tensor[N, H, W]).
    FUSED: the crop goes to packed[offsets[i]:] row-major, and covered pixels take
    keymap[y, x] = max(keymap, priority[i]) (atomic, so the highest priority wins).
    """
    i = tl.program_id(0)
    g = geo_ptr + i * 8
    x0, y0, x1, y1 = tl.load(g + 0), tl.load(g + 1), tl.load(g + 2), tl.load(g + 3)
    bx, by, oh, ow = tl.load(g + 4), tl.load(g + 5), tl.load(g + 6), tl.load(g + 7)
    rows = y0 + tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    r_ok = rows < y1
    iy0, iy1, wy0, wy1 = _taps(rows - by, oh, mp, EMULATE)
    base = masks_ptr + i.to(tl.int64) * mp * mp
    vis_w = tl.maximum(x1 - x0, 0)
    for cb in range(tl.cdiv(vis_w, BLOCK_W)):
        cols = x0 + cb * BLOCK_W + tl.arange(0, BLOCK_W)
        ok = r_ok[:, None] & (cols < x1)[None, :]
        ix0, ix1, wx0, wx1 = _taps(cols - bx, ow, mp, EMULATE)
        v00 = tl.load(base + iy0[:, None] * mp + ix0[None, :], mask=ok, other=0.0)
        v01 = tl.load(base + iy0[:, None] * mp + ix1[None, :], mask=ok, other=0.0)
        v10 = tl.load(base + iy1[:, None] * mp + ix0[None, :], mask=ok, other=0.0)
        v11 = tl.load(base + iy1[:, None] * mp + ix1[None, :], mask=ok, other=0.0)
        t0 = _fma(wx0[None, :], v00, wx1[None, :] * v01, EMULATE)
        t1 = _fma(wx0[None, :], v10, wx1[None, :] * v11, EMULATE)
        val = _fma(wy0[:, None], t0, wy1[:, None] * t1, EMULATE)
        bit = val > threshold
        if FUSED:
            off = tl.load(offsets_ptr + i) + ((rows - y0) * vis_w)[:, None] + (cols - x0)[None, :]
            tl.store(packed_ptr + off, bit.to(tl.uint8), mask=ok)
            pix = rows.to(tl.int64)[:, None] * width + cols[None, :]
            prio = tl.load(priority_ptr + i)
            tl.atomic_max(keymap_ptr + pix, tl.full([BLOCK_H, BLOCK_W], 0, tl.int32) + prio, mask=ok & bit)
        else:
            pix = (i.to(tl.int64) * height + rows)[:, None] * width + cols[None, :]
            tl.store(out_ptr + pix, bit.to(tl.uint8), mask=ok)
