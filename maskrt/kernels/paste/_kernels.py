"""Triton kernel of the paste op (imported lazily by paste/triton.py; see there).

Arguments are ordered as TensorRT's AOT plugins pass them (inputs, int32 scalars, outputs), so
the plain paste is the PasteMasks plugin's ahead-of-time kernel as is (tensorrt/aot.py).
"""

import triton
import triton.language as tl

COORD_LIMIT = tl.constexpr(1073741824.0)  # 2 ** 30 = common.COORD_LIMIT
FLT_MAX = tl.constexpr(3.4028234663852886e38)  # |x| <= FLT_MAX: finite (NaN compares false)


@triton.jit
def _fma(a, b, c, EMULATE: tl.constexpr):
    """float32 a * b + c rounded once (the interpreter has no fused multiply-add: emulate in float64)."""
    if EMULATE:
        return (a.to(tl.float64) * b.to(tl.float64) + c.to(tl.float64)).to(tl.float32)
    else:
        return tl.fma(a, b, c)


@triton.jit
def _taps(dst, out_size, in_size, EMULATE: tl.constexpr):
    """Bilinear align_corners=False taps for output indices dst of an axis resized in_size -> out_size
    (torch: scale = in / out, IEEE division; src = fma(scale, dst + 0.5, -0.5) clamped at 0)."""
    scale = tl.math.div_rn(in_size.to(tl.float32), out_size.to(tl.float32))
    src = tl.maximum(_fma(scale, dst.to(tl.float32) + 0.5, tl.full(dst.shape, -0.5, tl.float32), EMULATE), 0.0)
    i0 = tl.minimum(src.to(tl.int32), in_size - 1)
    lam = tl.minimum(tl.maximum(src - i0.to(tl.float32), 0.0), 1.0)
    i1 = tl.where(i0 < in_size - 1, i0 + 1, i0)
    return i0, i1, 1.0 - lam, lam


@triton.jit
def _box(boxes_ptr, i, live, m, height, width):
    """common.box_geometry for box i, float32 as torchvision's expand_boxes, truncated toward zero:
    (bx0, by0) the resized mask's corner, (oh, ow) its size (>= 1), (x0, y0, x1, y1) the visible region
    (empty, nothing read, when not live)."""
    b = boxes_ptr + i.to(tl.int64) * 4
    x1f, y1f = tl.load(b + 0, mask=live, other=0.0).to(tl.float32), tl.load(b + 1, mask=live, other=0.0).to(tl.float32)
    x2f, y2f = tl.load(b + 2, mask=live, other=0.0).to(tl.float32), tl.load(b + 3, mask=live, other=0.0).to(tl.float32)
    finite = (tl.abs(x1f) <= FLT_MAX) & (tl.abs(y1f) <= FLT_MAX) & (tl.abs(x2f) <= FLT_MAX) & (tl.abs(y2f) <= FLT_MAX)
    x1f = tl.minimum(tl.maximum(tl.where(finite, x1f, 0.0), -COORD_LIMIT), COORD_LIMIT)
    y1f = tl.minimum(tl.maximum(tl.where(finite, y1f, 0.0), -COORD_LIMIT), COORD_LIMIT)
    x2f = tl.minimum(tl.maximum(tl.where(finite, x2f, 0.0), -COORD_LIMIT), COORD_LIMIT)
    y2f = tl.minimum(tl.maximum(tl.where(finite, y2f, 0.0), -COORD_LIMIT), COORD_LIMIT)
    scale = tl.math.div_rn((m + 2).to(tl.float32), m.to(tl.float32))  # == float32((m + 2) / m), tested
    w_half = ((x2f - x1f) * 0.5) * scale
    h_half = ((y2f - y1f) * 0.5) * scale
    x_c = (x2f + x1f) * 0.5
    y_c = (y2f + y1f) * 0.5
    bx0 = (x_c - w_half).to(tl.int64)
    by0 = (y_c - h_half).to(tl.int64)
    bx1 = (x_c + w_half).to(tl.int64)
    by1 = (y_c + h_half).to(tl.int64)
    oh = tl.maximum(by1 - by0 + 1, 1)
    ow = tl.maximum(bx1 - bx0 + 1, 1)
    x0 = tl.where(finite, tl.maximum(bx0, 0), 0)
    y0 = tl.where(finite, tl.maximum(by0, 0), 0)
    x1 = tl.where(finite, tl.minimum(bx1 + 1, width), 0)
    y1 = tl.where(finite, tl.minimum(by1 + 1, height), 0)
    return bx0, by0, oh, ow, x0, y0, x1, y1


@triton.jit(do_not_specialize=["n", "m", "height", "width", "threshold_bits"])
def paste_kernel(masks_ptr, boxes_ptr, canvas_ptr, regions_ptr, offsets_ptr, priority_ptr, n, m, height, width,
                 threshold_bits, out_ptr, packed_ptr, keymap_ptr,
                 FUSED: tl.constexpr, EMULATE: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Instance program_id(0) (programs >= n, as TensorRT's grid of max(n, 1) makes for n = 0, do
    nothing), image rows [BLOCK_H * program_id(1), +BLOCK_H).

    masks: [N, m, m] probabilities (any float type; the zero border of torchvision's padding is
    virtual); boxes: [N, 4] float32 xyxy; threshold_bits: the float32 threshold's bits as int32
    (TensorRT passes AOT kernels int32 scalars only). canvas_ptr: the PasteMasks plugin's
    canvas input, unread (or None).
    Not FUSED: out[i, y, x] = (pasted > threshold) for every pixel of the rows (uint8 view of a
    bool Tensor[N, H, W]; outside the region: 0 > threshold).
    FUSED: only the visible region regions[i] = (x0, y0, x1, y1) (Tensor[N, 4] int64, the one the
    host computed offsets from: every write lies in packed[offsets[i]:offsets[i + 1]], row-major),
    and covered pixels take keymap[y, x] = max(keymap, priority[i]) (atomic: the highest priority
    wins); row blocks outside the region do no work.
    """
    i = tl.program_id(0)
    live = i < n
    threshold = threshold_bits.to(tl.float32, bitcast=True)
    bx0, by0, oh, ow, x0, y0, x1, y1 = _box(boxes_ptr, i, live, m, height, width)
    if FUSED:  # the host's regions, from which the packed offsets were computed
        x0, y0 = _regions_at(regions_ptr, i, live, 0), _regions_at(regions_ptr, i, live, 1)
        x1, y1 = _regions_at(regions_ptr, i, live, 2), _regions_at(regions_ptr, i, live, 3)
    row0 = tl.program_id(1) * BLOCK_H
    rows = row0 + tl.arange(0, BLOCK_H)
    r_in = (rows >= y0) & (rows < y1)
    mp = m + 2
    iy0, iy1, wy0, wy1 = _taps(rows - by0, oh, mp, EMULATE)
    base = masks_ptr + i.to(tl.int64) * m * m
    vis_w = tl.maximum(x1 - x0, 0)
    col0, ncols = columns(x0, y0, y1, vis_w, width, live, FUSED, BLOCK_H)
    for cb in range(tl.cdiv(ncols, BLOCK_W)):
        cols = col0 + cb * BLOCK_W + tl.arange(0, BLOCK_W)
        ok = r_in[:, None] & ((cols >= x0) & (cols < x1))[None, :]
        ix0, ix1, wx0, wx1 = _taps(cols - bx0, ow, mp, EMULATE)
        v00 = _padded(base, iy0, ix0, m, ok)
        v01 = _padded(base, iy0, ix1, m, ok)
        v10 = _padded(base, iy1, ix0, m, ok)
        v11 = _padded(base, iy1, ix1, m, ok)
        t0 = _fma(wx0[None, :], v00, wx1[None, :] * v01, EMULATE)
        t1 = _fma(wx0[None, :], v10, wx1[None, :] * v11, EMULATE)
        val = _fma(wy0[:, None], t0, wy1[:, None] * t1, EMULATE)
        bit = val > threshold
        write_bits(bit, ok, i, rows, cols, x0, y0, vis_w, height, width, threshold, offsets_ptr, priority_ptr,
                   out_ptr, packed_ptr, keymap_ptr, FUSED, BLOCK_H, BLOCK_W)


@triton.jit
def _regions_at(regions_ptr, i, live, k: tl.constexpr):
    """regions[i, k] (Tensor[N, 4] int64: x0, y0, x1, y1), 0 when not live."""
    return tl.load(regions_ptr + i.to(tl.int64) * 4 + k, mask=live, other=0)


@triton.jit
def columns(x0, y0, y1, vis_w, width, live, FUSED: tl.constexpr, BLOCK_H: tl.constexpr):
    """(first column, number of columns) a program of rows [BLOCK_H * program_id(1), +BLOCK_H) visits:
    FUSED, the region's (none for row blocks off it, above or below); else every column of the
    image; none for a program past the instances (not live)."""
    row0 = tl.program_id(1) * BLOCK_H
    if FUSED:
        return x0, tl.where(live & (row0 < y1) & (row0 + BLOCK_H > y0), vis_w, 0)
    else:
        return x0 * 0, tl.where(live, width, 0)


@triton.jit
def write_bits(bit, ok, i, rows, cols, x0, y0, vis_w, height, width, threshold, offsets_ptr, priority_ptr,
               out_ptr, packed_ptr, keymap_ptr, FUSED: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Store a [BLOCK_H, BLOCK_W] tile of instance i's thresholded pixels (ok: inside its region).
    FUSED: the crop into packed[offsets[i]:] (row-major over the region, width vis_w) and the
    atomic max of priority[i] into keymap where the pixel is set; else every pixel of the tile
    that lies in the image into out[i] (outside the region: 0 > threshold)."""
    if FUSED:
        off = tl.load(offsets_ptr + i) + ((rows - y0) * vis_w)[:, None] + (cols - x0)[None, :]
        tl.store(packed_ptr + off, bit.to(tl.uint8), mask=ok)
        pix = rows.to(tl.int64)[:, None] * width + cols[None, :]
        prio = tl.load(priority_ptr + i)
        tl.atomic_max(keymap_ptr + pix, tl.full([BLOCK_H, BLOCK_W], 0, tl.int32) + prio, mask=ok & bit)
    else:
        bit = tl.where(ok, bit, 0.0 > threshold)
        pix = (i.to(tl.int64) * height + rows)[:, None] * width + cols[None, :]
        in_image = (rows < height)[:, None] & (cols < width)[None, :]
        tl.store(out_ptr + pix, bit.to(tl.uint8), mask=in_image)


@triton.jit
def _padded(base, iy, ix, m, ok):
    """Element (iy, ix) of the mask padded by one zero pixel on each side, as float32."""
    inside = ok & ((iy >= 1) & (iy <= m))[:, None] & ((ix >= 1) & (ix <= m))[None, :]
    return tl.load(base + ((iy - 1) * m)[:, None] + (ix - 1)[None, :], mask=inside, other=0.0).to(tl.float32)
