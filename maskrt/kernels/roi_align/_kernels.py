"""Triton kernel of the roi_align op (imported lazily by roi_align/triton.py; see there)."""

import triton
import triton.language as tl

from .._ieee import ieee_div, ieee_sqrt


@triton.jit
def _pick(level, a0, a1, a2, a3, a4, NUM_LEVELS: tl.constexpr):
    """Value of a per-level argument for `level` in [0, NUM_LEVELS); the arguments of levels
    >= NUM_LEVELS are None (absent)."""
    v = a0
    if NUM_LEVELS > 1:
        v = tl.where(level == 1, a1, v)
    if NUM_LEVELS > 2:
        v = tl.where(level == 2, a2, v)
    if NUM_LEVELS > 3:
        v = tl.where(level == 3, a3, v)
    if NUM_LEVELS > 4:
        v = tl.where(level == 4, a4, v)
    return v


@triton.jit
def _fpn_level(x1, y1, x2, y2, CANONICAL: tl.constexpr, NUM_T: tl.constexpr,
               T1: tl.constexpr, T2: tl.constexpr, T3: tl.constexpr, T4: tl.constexpr, T5: tl.constexpr):
    """FPN eq. 1 as reference.fpn_levels computes it: q = sqrt((x2 - x1) * (y2 - y1)) / CANONICAL in
    float64 for float64 RoIs, else float32 (torchvision's box_area upcasts float16 / bfloat16),
    IEEE square root and division; level = #{j <= NUM_T: q >= T_j} (T_j: common.level_thresholds,
    the smallest q of each higher level), -1 when q is NaN (negative area)."""
    if x1.dtype == tl.float64:
        level = _level_in(x1, y1, x2, y2, tl.float64, CANONICAL, NUM_T, T1, T2, T3, T4, T5)
    else:
        level = _level_in(x1, y1, x2, y2, tl.float32, CANONICAL, NUM_T, T1, T2, T3, T4, T5)
    return level


@triton.jit
def _level_in(x1, y1, x2, y2, QT: tl.constexpr, CANONICAL: tl.constexpr, NUM_T: tl.constexpr,
              T1: tl.constexpr, T2: tl.constexpr, T3: tl.constexpr, T4: tl.constexpr, T5: tl.constexpr):
    area = (x2.to(QT) - x1.to(QT)) * (y2.to(QT) - y1.to(QT))
    q = ieee_div(ieee_sqrt(area), tl.full(area.shape, CANONICAL, QT))
    level = tl.zeros(q.shape, tl.int32)
    if NUM_T > 0:
        level += (q >= tl.full(q.shape, T1, QT)).to(tl.int32)
    if NUM_T > 1:
        level += (q >= tl.full(q.shape, T2, QT)).to(tl.int32)
    if NUM_T > 2:
        level += (q >= tl.full(q.shape, T3, QT)).to(tl.int32)
    if NUM_T > 3:
        level += (q >= tl.full(q.shape, T4, QT)).to(tl.int32)
    if NUM_T > 4:
        level += (q >= tl.full(q.shape, T5, QT)).to(tl.int32)
    return tl.where(q == q, level, -1)


@triton.jit
def _finite(x):
    return tl.abs(x) < float("inf")  # NaN compares false


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


@triton.jit(do_not_specialize=["n_rois", "channels", "h0", "w0", "h1", "w1", "h2", "w2", "h3", "w3", "h4", "w4",
                               "sampling_ratio", "batch_size"])
def roi_align_kernel(f0, f1, f2, f3, f4, rois_ptr, n_rois, channels, h0, w0, h1, w1, h2, w2, h3, w3, h4, w4,
                     sampling_ratio, batch_size, out_ptr,
                     S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr, S4: tl.constexpr,
                     NUM_LEVELS: tl.constexpr, MAP_LEVELS: tl.constexpr, CANONICAL: tl.constexpr,
                     NUM_T: tl.constexpr, T1: tl.constexpr, T2: tl.constexpr, T3: tl.constexpr, T4: tl.constexpr,
                     T5: tl.constexpr, SIZE: tl.constexpr, ALIGNED: tl.constexpr, DTYPE: tl.constexpr,
                     ACC: tl.constexpr, ROI_BLOCK: tl.constexpr, BIN_BLOCK: tl.constexpr, BLOCK_C: tl.constexpr):
    """RoIs [ROI_BLOCK * program_id(0), +ROI_BLOCK), channels [BLOCK_C * program_id(1), +BLOCK_C),
    bins [BIN_BLOCK * program_id(2), +BIN_BLOCK) of their SIZE x SIZE: a [BLOCK_C, ROI_BLOCK *
    BIN_BLOCK] tile, column t = bin (t % BIN_BLOCK) of RoI (t // BIN_BLOCK); bins along the fast
    axis (neighbouring threads read neighbouring sample points, write neighbouring outputs). On a
    GPU ROI_BLOCK = 1 (the RoI's geometry is uniform across the tile); the interpreter, which pays
    per operation, takes many RoIs per program.

    Arguments in TensorRT's AOT order (inputs, int32 scalars, output): the MultiLevelRoIAlign
    plugin launches this kernel as is (maskrt.tensorrt.aot). f0..f4: the level maps Tensor[B, C,
    H_l, W_l] (levels >= NUM_LEVELS: None, with their h, w); S0..S4 their spatial scales (already
    rounded to the features' dtype); rois: Tensor[n_rois, 5]. The level of each RoI is FPN eq. 1
    computed here (_fpn_level; MAP_LEVELS False: level 0 for all, as with one feature map). A RoI
    with a non-finite value, a batch index outside [0, batch_size) or a level outside [0,
    NUM_LEVELS) pools to 0. Geometry as roi_align.cpu._geometry, in ACC (float32; float64 for
    float64 features): the RoI rounded to DTYPE, start = coordinate * scale - offset, size clamped
    at 1 unless ALIGNED, bin = size / SIZE, grid = sampling_ratio or ceil(bin). Samples as
    torchvision's CPU kernel, in its operation order: y = start + ph * bin + (iy + 0.5) * bin /
    grid; outside [-1, size] zero; clamped at 0 and size - 1; the bin is the sum over the grid
    divided by max(grid_h * grid_w, 1). Divisions are IEEE (_ieee.ieee_div); the launch disables
    FMA contraction.
    """
    t = tl.arange(0, ROI_BLOCK * BIN_BLOCK)
    roi = tl.program_id(0) * ROI_BLOCK + t // BIN_BLOCK
    bins = tl.program_id(2) * BIN_BLOCK + t % BIN_BLOCK
    live = roi < n_rois  # no RoI at all (n_rois = 0, TensorRT's grid of one program): nothing is read
    col_ok = live & (bins < SIZE * SIZE)
    roi = tl.where(live, roi, 0)
    r = rois_ptr + roi.to(tl.int64) * 5
    rx1, ry1 = tl.load(r + 1, mask=live, other=0.0), tl.load(r + 2, mask=live, other=0.0)
    rx2, ry2 = tl.load(r + 3, mask=live, other=0.0), tl.load(r + 4, mask=live, other=0.0)
    batch_f = tl.load(r, mask=live, other=-1.0).to(DTYPE).to(ACC)
    roi_ok = _finite(rx1) & _finite(ry1) & _finite(rx2) & _finite(ry2) & _finite(batch_f) & (batch_f >= 0)
    batch = tl.where(roi_ok, batch_f, 0.0).to(tl.int64)
    roi_ok = roi_ok & (batch < batch_size)
    if MAP_LEVELS:
        level = _fpn_level(rx1, ry1, rx2, ry2, CANONICAL, NUM_T, T1, T2, T3, T4, T5)
    else:
        level = tl.zeros(roi.shape, tl.int32)
    assigned = roi_ok & (level >= 0) & (level < NUM_LEVELS)
    lv = tl.minimum(tl.maximum(level, 0), NUM_LEVELS - 1).to(tl.int32)
    h = _pick(lv, h0, h1, h2, h3, h4, NUM_LEVELS)
    w = _pick(lv, w0, w1, w2, w3, w4, NUM_LEVELS)
    scale = _pick(lv, tl.full((), S0, ACC), tl.full((), S1, ACC), tl.full((), S2, ACC), tl.full((), S3, ACC),
                  tl.full((), S4, ACC), NUM_LEVELS)
    offset = 0.5 if ALIGNED else 0.0
    x1 = rx1.to(DTYPE).to(ACC) * scale - offset
    y1 = ry1.to(DTYPE).to(ACC) * scale - offset
    x2 = rx2.to(DTYPE).to(ACC) * scale - offset
    y2 = ry2.to(DTYPE).to(ACC) * scale - offset
    roi_w, roi_h = x2 - x1, y2 - y1
    if not ALIGNED:
        roi_w, roi_h = tl.maximum(roi_w, 1.0), tl.maximum(roi_h, 1.0)
    size_f = tl.full(roi_w.shape, SIZE, ACC)
    bin_h, bin_w = ieee_div(roi_h, size_f), ieee_div(roi_w, size_f)
    if sampling_ratio > 0:
        grid_h = tl.full(roi_w.shape, 0, tl.int32) + sampling_ratio
        grid_w = grid_h
    else:
        grid_h = tl.maximum(tl.math.ceil(bin_h).to(tl.int32), 0)
        grid_w = tl.maximum(tl.math.ceil(bin_w).to(tl.int32), 0)
    grid_h, grid_w = tl.where(assigned & col_ok, grid_h, 0), tl.where(assigned & col_ok, grid_w, 0)
    gh_f, gw_f = tl.maximum(grid_h, 1).to(ACC), tl.maximum(grid_w, 1).to(ACC)  # 0: no samples
    count = tl.maximum(grid_h * grid_w, 1).to(ACC)
    cs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = cs < channels
    plane = (batch * channels)[None, :] + cs[:, None]  # [BLOCK_C, columns] channel plane index
    base = _pick(lv, f0, f1, f2, f3, f4, NUM_LEVELS)[None, :] + plane.to(tl.int64) * (h * w).to(tl.int64)[None, :]
    ph = (bins // SIZE).to(ACC)
    pw = (bins % SIZE).to(ACC)
    acc = tl.zeros([BLOCK_C, ROI_BLOCK * BIN_BLOCK], dtype=ACC)
    for iy in range(tl.max(grid_h, 0)):
        yy = y1 + ph * bin_h + ieee_div((iy + 0.5) * bin_h, gh_f)
        y_low, y_high, ly, y_ok = _axis(yy, h)
        for ix in range(tl.max(grid_w, 0)):
            xx = x1 + pw * bin_w + ieee_div((ix + 0.5) * bin_w, gw_f)
            x_low, x_high, lx, x_ok = _axis(xx, w)
            use = y_ok & x_ok & (iy < grid_h) & (ix < grid_w)
            m = c_ok[:, None] & use[None, :]
            hy, hx = 1.0 - ly, 1.0 - lx
            v1 = tl.load(base + (y_low * w + x_low)[None, :], mask=m, other=0.0).to(ACC)
            v2 = tl.load(base + (y_low * w + x_high)[None, :], mask=m, other=0.0).to(ACC)
            v3 = tl.load(base + (y_high * w + x_low)[None, :], mask=m, other=0.0).to(ACC)
            v4 = tl.load(base + (y_high * w + x_high)[None, :], mask=m, other=0.0).to(ACC)
            val = ((hy * hx)[None, :] * v1 + (hy * lx)[None, :] * v2 + (ly * hx)[None, :] * v3 +
                   (ly * lx)[None, :] * v4)
            acc += tl.where(m, val, 0.0)
    res = ieee_div(acc, tl.zeros([BLOCK_C, ROI_BLOCK * BIN_BLOCK], dtype=ACC) + count[None, :])
    dst = out_ptr + ((roi.to(tl.int64) * channels)[None, :] + cs[:, None]) * (SIZE * SIZE) + bins[None, :]
    tl.store(dst, res.to(out_ptr.dtype.element_ty), mask=c_ok[:, None] & col_ok[None, :])
