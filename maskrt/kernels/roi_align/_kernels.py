"""Triton kernel of the roi_align op (imported lazily by roi_align/triton.py; see there)."""

import triton
import triton.language as tl


@triton.jit
def roi_align_kernel(level_ptrs, heights, widths, levels, batch, start_h, start_w, bin_h, bin_w, grid_h, grid_w,
                     block_grid, out_ptr, n_rois, channels, size, DTYPE: tl.constexpr, ACC: tl.constexpr,
                     ROI_BLOCK: tl.constexpr, BINS: tl.constexpr, BLOCK_C: tl.constexpr):
    """Pool ROI_BLOCK RoIs x BLOCK_C channels: a [ROI_BLOCK * BINS, BLOCK_C] tile of output bins.

    Row t of the tile is bin (t % BINS) of RoI (program_id(0) * ROI_BLOCK + t // BINS). Each row
    reads its level's feature map through the level pointer table. Samples follow torchvision's
    CPU kernel: y = start + ph * bin + (iy + 0.5) * bin / grid; samples outside [-1, size] count
    as zero; coordinates clamp at 0 and at size - 1; the bin is the mean over grid_h x grid_w.
    block_grid: per program (max grid_h, max grid_w) of its RoIs (the sample loop bounds).
    ACC: the accumulation dtype (float32; float64 for float64 features, whose geometry is float64).
    """
    t = tl.arange(0, ROI_BLOCK * BINS)
    roi = tl.program_id(0) * ROI_BLOCK + t // BINS
    bin_id = t % BINS
    row_ok = (roi < n_rois) & (bin_id < size * size)
    roi = tl.where(row_ok, roi, 0)
    ph = (bin_id // size).to(tl.float32)
    pw = (bin_id % size).to(tl.float32)
    lvl = tl.load(levels + roi)
    fmap = tl.load(level_ptrs + lvl).to(tl.pointer_type(DTYPE))
    h = tl.load(heights + lvl)
    w = tl.load(widths + lvl)
    sh, sw = tl.load(start_h + roi), tl.load(start_w + roi)
    bh, bw = tl.load(bin_h + roi), tl.load(bin_w + roi)
    gh, gw = tl.load(grid_h + roi), tl.load(grid_w + roi)
    cs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = cs < channels
    plane = (tl.load(batch + roi).to(tl.int64)[:, None] * channels + cs[None, :]) * (h * w).to(tl.int64)[:, None]
    ok = row_ok[:, None] & c_ok[None, :]
    acc = tl.zeros([ROI_BLOCK * BINS, BLOCK_C], dtype=ACC)
    for iy in range(tl.load(block_grid + 2 * tl.program_id(0))):
        yy = sh + ph * bh + (iy + 0.5) * bh / tl.maximum(gh, 1).to(tl.float32)  # gh = 0: no samples
        y_low, y_high, ly, y_ok = _axis(yy, h)
        for ix in range(tl.load(block_grid + 2 * tl.program_id(0) + 1)):
            xx = sw + pw * bw + (ix + 0.5) * bw / tl.maximum(gw, 1).to(tl.float32)
            x_low, x_high, lx, x_ok = _axis(xx, w)
            use = y_ok & x_ok & (iy < gh) & (ix < gw)
            hy, hx = 1.0 - ly, 1.0 - lx
            m = ok & use[:, None]
            v1 = tl.load(fmap[:, None] + plane + (y_low * w + x_low)[:, None], mask=m, other=0.0).to(ACC)
            v2 = tl.load(fmap[:, None] + plane + (y_low * w + x_high)[:, None], mask=m, other=0.0).to(ACC)
            v3 = tl.load(fmap[:, None] + plane + (y_high * w + x_low)[:, None], mask=m, other=0.0).to(ACC)
            v4 = tl.load(fmap[:, None] + plane + (y_high * w + x_high)[:, None], mask=m, other=0.0).to(ACC)
            val = (hy * hx)[:, None] * v1 + (hy * lx)[:, None] * v2 + (ly * hx)[:, None] * v3 + (ly * lx)[:, None] * v4
            acc += tl.where(m, val, 0.0)
    count = tl.maximum(gh * gw, 1).to(ACC)
    res = acc / count[:, None]
    row = (roi.to(tl.int64) * channels)[:, None] + cs[None, :]
    dst = out_ptr + row * (size * size) + bin_id[:, None]
    tl.store(dst, res.to(out_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _axis(coord, limit):
    """(low, high, frac, valid) bilinear taps of sample coordinates along one axis (torchvision)."""
    valid = (coord >= -1.0) & (coord <= limit.to(tl.float32))
    c = tl.maximum(coord, 0.0)
    low = c.to(tl.int32)
    edge = low >= limit - 1
    low = tl.where(edge, limit - 1, low)
    high = tl.where(edge, low, low + 1)
    frac = tl.where(edge, 0.0, c - low.to(tl.float32))
    return low, high, frac, valid
