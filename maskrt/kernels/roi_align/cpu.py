"""Fast CPU multi-level RoIAlign: all RoIs of a level in one weighted gather.

All levels are copied channels-last into one table Tensor[sum_l B * H_l * W_l, C]. Every
output bin of every RoI is a weighted sum of `4 * gh * gw` table rows (gh x gw sampling points,
4 bilinear taps each); positions (level base + row) and weights are computed for all RoIs at
once in float32 with torchvision's arithmetic, and one `F.embedding_bag(mode="sum",
per_sample_weights=...)` performs the gather-multiply-add over C contiguous channels, writing
bins in raster order of the RoIs (level, image, row band, column: neighbouring RoIs share
cache lines), then one row copy puts them in RoI order. The result is channels_last, so the
output is never transposed.

RoIs whose adaptive grid is large (gh * gw > MAX_GATHER_SAMPLES, e.g. huge boxes) use an exact
separable path instead: out = Wy @ F @ Wx^T with per-axis weights accumulated over samples, so
memory stays bounded by the feature map, not by the number of samples.

Numerics: as torchvision's CPU roi_align (fp32 accumulation); differences are rounding only
(~1e-6 relative). fp16 inputs are computed in fp32 and rounded once at the end.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import assign_levels, check_inputs

MAX_GATHER_SAMPLES = 36  # gh * gw per bin above which the separable path is used
_CHUNK_BINS = 1 << 16  # bins per embedding_bag call (bounds the index/weight tensors to ~100 MB)


def roi_align(
    features: Sequence[Tensor],
    rois: Tensor,
    spatial_scales: Sequence[float],
    output_size: int,
    sampling_ratio: int = 2,
    aligned: bool = False,
    canonical_size: int = 224,
    canonical_level: int = 4,
) -> Tensor:
    """Multi-level RoIAlign, same contract as `maskrt.kernels.roi_align.reference.roi_align`.

    features: L x Tensor[B, C, H_l, W_l]; rois: Tensor[R, 5] (batch_index, x1, y1, x2, y2) in
    input-image pixels. Returns Tensor[R, C, output_size, output_size] in the features' dtype, in
    channels_last memory format (the values are the same; call .contiguous() for NCHW strides).
    Raises ValueError for non-finite RoIs or batch indices out of range.
    """
    check_inputs(features, rois, spatial_scales, output_size)
    first = features[0]
    n, c, size = rois.shape[0], first.shape[1], output_size
    if n == 0:
        return first.new_zeros((0, size, size, c)).permute(0, 3, 1, 2)
    table, bases = pyramid_table(features)
    levels = assign_levels(rois, spatial_scales, canonical_size, canonical_level)
    geo = _geometry(rois, levels, features, spatial_scales, bases, size, sampling_ratio, aligned)
    order = _raster_order(geo)
    geo = {k: v[order] for k, v in geo.items()}
    grids = torch.stack([geo["grid_h"], geo["grid_w"]], 1)
    pairs = torch.unique(grids, dim=0).tolist()
    if len(pairs) == 1 and pairs[0][0] * pairs[0][1] <= MAX_GATHER_SAMPLES:
        pos, weight = _taps(geo, size, *pairs[0])
        out = _bag_sum(table, pos.view(n * size * size, -1), weight.view(n * size * size, -1), None)
    else:
        out = _pool_mixed(table, geo, grids, pairs, size)
    for i in torch.where(grids.prod(1) > MAX_GATHER_SAMPLES)[0].tolist():
        one = {k: v[i : i + 1] for k, v in geo.items()}
        out.view(n, size, size, c)[i] = _separable(table, one, size)
    result = torch.empty((n, size, size, c), dtype=first.dtype)
    result.index_copy_(0, order, out.view(n, size, size, c).to(first.dtype))
    # [R, S, S, C] -> Tensor[R, C, S, S] in channels_last memory format: no transpose of the output.
    return result.permute(0, 3, 1, 2)


def pyramid_table(features: Sequence[Tensor]) -> tuple[Tensor, list[int]]:
    """All levels channels-last in one float32 Tensor[sum_l B * H_l * W_l, C], and each level's first row."""
    b, c = features[0].shape[:2]
    sizes = [b * f.shape[2] * f.shape[3] for f in features]
    bases = [sum(sizes[:i]) for i in range(len(sizes))]
    table = torch.empty((sum(sizes), c), dtype=torch.float32)
    for f, base, rows in zip(features, bases, sizes):
        dst = table[base : base + rows].view(b, -1, c)
        for i in range(b):  # a 2-D transpose per image is ~1.7x faster than a 4-D permute copy
            dst[i].copy_(f[i].reshape(c, -1).t())
    return table, bases


def _geometry(rois, levels, features, spatial_scales, bases, size, sampling_ratio, aligned) -> dict[str, Tensor]:
    """Per-RoI level geometry, start, bin size and sampling grid with torchvision's float32 arithmetic.

    The RoI is rounded to the features' dtype first, as the reference does before pooling.
    """
    dtype = features[0].dtype
    scale = torch.tensor([float(s) for s in spatial_scales], dtype=dtype).float()[levels]
    height = torch.tensor([f.shape[2] for f in features])[levels]
    width = torch.tensor([f.shape[3] for f in features])[levels]
    r = rois.to(dtype).float()
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (r[:, k] * scale - offset for k in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / size, roi_w / size
    if sampling_ratio > 0:
        grid_h = torch.full_like(levels, sampling_ratio)
        grid_w = grid_h.clone()
    else:
        grid_h = torch.ceil(roi_h / size).to(torch.int64)
        grid_w = torch.ceil(roi_w / size).to(torch.int64)
    base = torch.tensor(bases)[levels] + r[:, 0].to(torch.int64) * height * width
    return {"base": base, "height": height, "width": width, "start_h": y1, "start_w": x1, "bin_h": bin_h,
            "bin_w": bin_w, "grid_h": grid_h, "grid_w": grid_w}


def _pool_mixed(table: Tensor, geo: dict[str, Tensor], grids: Tensor, pairs, size: int) -> Tensor:
    """Adaptive grids: one variable-length bag per bin, bags in RoI order. -> Tensor[R * S * S, C]."""
    n = grids.shape[0]
    taps = 4 * grids.prod(1)
    taps = torch.where(taps > 4 * MAX_GATHER_SAMPLES, 0, taps)  # separable RoIs get empty bags here
    per_roi = taps * size * size
    starts = torch.cumsum(per_roi, 0) - per_roi
    total = int(per_roi.sum())
    flat_pos = torch.empty(total, dtype=torch.int64)
    flat_w = torch.empty(total, dtype=torch.float32)
    for gh, gw in pairs:
        if gh * gw > MAX_GATHER_SAMPLES:
            continue
        sel = torch.where((grids[:, 0] == gh) & (grids[:, 1] == gw))[0]
        pos, weight = _taps({k: v[sel] for k, v in geo.items()}, size, gh, gw)
        dst = (starts[sel][:, None] + torch.arange(pos[0].numel())[None, :]).reshape(-1)
        flat_pos[dst] = pos.reshape(-1)
        flat_w[dst] = weight.reshape(-1)
    bag_sizes = taps.repeat_interleave(size * size)
    offsets = torch.cumsum(bag_sizes, 0) - bag_sizes
    return _bag_sum(table, flat_pos, flat_w, offsets)


def _bag_sum(table: Tensor, pos: Tensor, weight: Tensor, offsets: Tensor | None) -> Tensor:
    """sum_k weight[bag, k] * table[pos[bag, k]] for every bag -> Tensor[bags, C] float32."""
    if offsets is None:
        if pos.shape[0] <= _CHUNK_BINS:
            return F.embedding_bag(pos, table, per_sample_weights=weight, mode="sum")
        return torch.cat([F.embedding_bag(pos[s : s + _CHUNK_BINS], table, per_sample_weights=weight[s : s + _CHUNK_BINS],
                                          mode="sum") for s in range(0, pos.shape[0], _CHUNK_BINS)])
    return F.embedding_bag(pos, table, offsets, per_sample_weights=weight, mode="sum", include_last_offset=False)


def axis_taps(start: Tensor, bin_size: Tensor, grid: int, size: int, limit: Tensor | int, first: int = 0):
    """Bilinear taps along one axis for samples `first .. first + g` of every bin (g <= _CHUNK_BINS).

    start, bin_size: Tensor[n] float32; limit: the feature size along the axis (int or Tensor[n]).
    Sample k of bin p sits at start + p * bin + (k + 0.5) * bin / grid (torchvision's order of
    operations). Returns (index Tensor[n, size, g, 2] int64, weight Tensor[n, size, g, 2] float32,
    valid Tensor[n, size, g] bool); samples outside [-1, limit] are invalid (torchvision drops them).
    """
    n_samples = min(grid - first, _CHUNK_BINS)
    limit = torch.as_tensor(limit).reshape(-1, 1, 1)
    p = torch.arange(size, dtype=torch.float32)
    k = torch.arange(first, first + n_samples, dtype=torch.float32)
    coord = (start[:, None] + p[None, :] * bin_size[:, None])[:, :, None] + \
        ((k + 0.5)[None, :] * bin_size[:, None] / float(grid))[:, None, :]
    valid = (coord >= -1.0) & (coord <= limit)
    coord = coord.clamp(min=0.0)
    low = coord.to(torch.int64)
    at_edge = low >= limit - 1
    low = torch.where(at_edge, limit - 1, low)
    high = torch.where(at_edge, low, low + 1)
    frac = torch.where(at_edge, 0.0, coord - low)
    return torch.stack([low, high], -1), torch.stack([1.0 - frac, frac], -1), valid


def _taps(geo: dict[str, Tensor], size: int, gh: int, gw: int) -> tuple[Tensor, Tensor]:
    """Table rows and weights of every bin's 4 * gh * gw bilinear taps: two Tensor[n, S, S, 4 * gh * gw]."""
    n = geo["start_h"].shape[0]
    yi, yw, yv = axis_taps(geo["start_h"], geo["bin_h"], gh, size, geo["height"])
    xi, xw, xv = axis_taps(geo["start_w"], geo["bin_w"], gw, size, geo["width"])
    # [n, P, gh, 2] x [n, Q, gw, 2] -> [n, P, Q, gh, 2, gw, 2]
    rows = (geo["base"][:, None, None, None] + yi * geo["width"][:, None, None, None])
    pos = rows[:, :, None, :, :, None, None] + xi[:, None, :, None, None, :, :]
    wy = (yw * (yv[..., None] / float(max(gh * gw, 1))))[:, :, None, :, :, None, None]
    wx = (xw * xv[..., None])[:, None, :, None, None, :, :]
    return pos.reshape(n, size, size, -1), (wy * wx).reshape(n, size, size, -1)


def _separable(table: Tensor, geo: dict[str, Tensor], size: int) -> Tensor:
    """One RoI with a large sampling grid: Tensor[S, S, C] = Wy @ F @ Wx^T / count.

    Per-axis weights are accumulated over samples in chunks, so memory stays O(S * (H + W)) and
    the cost O(samples + S * H * W * C) whatever the grid size.
    """
    h, w = int(geo["height"][0]), int(geo["width"][0])
    gh, gw = int(geo["grid_h"][0]), int(geo["grid_w"][0])
    wy = _axis_matrix(geo["start_h"], geo["bin_h"], gh, size, h)  # [P, H]
    wx = _axis_matrix(geo["start_w"], geo["bin_w"], gw, size, w)  # [Q, W]
    fmap = table[int(geo["base"][0]) : int(geo["base"][0]) + h * w].view(h, w, -1)
    tmp = torch.einsum("ph,hwc->pwc", wy, fmap)
    return torch.einsum("qw,pwc->pqc", wx, tmp) / float(max(gh * gw, 1))


def _axis_matrix(start: Tensor, bin_size: Tensor, grid: int, size: int, limit: int) -> Tensor:
    """Dense Tensor[size, limit] float32 of summed tap weights along one axis for a single RoI."""
    mat = torch.zeros((size, limit), dtype=torch.float64)
    for first in range(0, grid, _CHUNK_BINS):
        index, weight, valid = axis_taps(start, bin_size, grid, size, limit, first)
        weight = (weight * valid[..., None]).double()
        mat.scatter_add_(1, index[0].reshape(size, -1), weight[0].reshape(size, -1))
    return mat.float()


def _raster_order(geo: dict[str, Tensor]) -> Tensor:
    """Permutation visiting RoIs by table position of their top-left corner, in bands of 16 rows."""
    row = (geo["start_h"].clamp(-1.0, 1e6) / 16.0).floor().to(torch.int64).clamp(min=0)
    col = geo["start_w"].clamp(0.0, 1e6).to(torch.int64)
    key = (geo["base"] + row * 16 * geo["width"]) * 4096 + col.clamp(max=4095)
    return torch.argsort(key, stable=True)
