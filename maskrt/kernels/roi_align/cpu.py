"""Fast CPU multi-level RoIAlign: all RoIs of a level in one weighted gather.

Per level, the feature map is viewed channels-last as a table Tensor[B * H * W, C]. Every
output bin of every RoI is a weighted sum of `4 * gh * gw` table rows (gh x gw sampling points,
4 bilinear taps each); positions and weights are computed for all RoIs at once in float32 with
torchvision's arithmetic, and `F.embedding_bag(mode="sum", per_sample_weights=...)` performs
the gather-multiply-add over C contiguous channels. RoIs are visited in raster order of their
position so neighbouring RoIs share cache lines.

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
    input-image pixels. Returns Tensor[R, C, output_size, output_size] in the features' dtype.
    Raises ValueError for non-finite RoIs or batch indices out of range.
    """
    check_inputs(features, rois, spatial_scales, output_size)
    first = features[0]
    out = first.new_zeros((rois.shape[0], first.shape[1], output_size, output_size))
    if rois.shape[0] == 0:
        return out
    levels = assign_levels(rois, spatial_scales, canonical_size, canonical_level)
    for level, (feature, scale) in enumerate(zip(features, spatial_scales)):
        idx = torch.where(levels == level)[0]
        if idx.numel() == 0:
            continue
        level_rois = rois[idx].to(feature.dtype).float()  # the reference rounds RoIs to the features' dtype
        order = _raster_order(level_rois, feature.shape[-1] / max(scale, 1e-30))
        pooled = pool_level(feature, level_rois[order], float(scale), output_size, sampling_ratio, aligned)
        out[idx[order]] = pooled.permute(0, 3, 1, 2).to(out.dtype)
    return out


def pool_level(feature: Tensor, rois: Tensor, scale: float, size: int, sampling_ratio: int, aligned: bool) -> Tensor:
    """RoIAlign of n RoIs on one level. feature: Tensor[B, C, H, W]; rois: Tensor[n, 5] float32.

    Returns Tensor[n, size, size, C] float32 (channels last).
    """
    b, c, h, w = feature.shape
    table = feature.permute(0, 2, 3, 1).reshape(b * h * w, c).float()  # no copy if already channels_last fp32
    geo = _geometry(rois, scale, size, sampling_ratio, aligned)
    out = torch.zeros((rois.shape[0], size, size, c), dtype=torch.float32)
    grids = torch.stack([geo["grid_h"], geo["grid_w"]], 1)
    for gh, gw in torch.unique(grids, dim=0).tolist():
        sel = torch.where((grids[:, 0] == gh) & (grids[:, 1] == gw))[0]
        part = {k: v[sel] for k, v in geo.items()}
        if gh * gw <= MAX_GATHER_SAMPLES:
            out[sel] = _gather(table, part, (h, w), size, int(gh), int(gw))
        else:
            for j, i in enumerate(sel.tolist()):
                one = {k: v[j : j + 1] for k, v in part.items()}
                out[i] = _separable(table.view(b, h, w, c), one, (h, w), size, int(gh), int(gw))
    return out


def _geometry(rois: Tensor, scale: float, size: int, sampling_ratio: int, aligned: bool) -> dict[str, Tensor]:
    """Per-RoI start, bin size and sampling grid with torchvision's float32 arithmetic."""
    s = torch.tensor(scale, dtype=torch.float32)
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, k] * s - offset for k in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / size, roi_w / size
    if sampling_ratio > 0:
        grid_h = torch.full_like(bin_h, sampling_ratio, dtype=torch.int64)
        grid_w = grid_h.clone()
    else:
        grid_h = torch.ceil(roi_h / size).to(torch.int64)
        grid_w = torch.ceil(roi_w / size).to(torch.int64)
    return {"batch": rois[:, 0].to(torch.int64), "start_h": y1, "start_w": x1, "bin_h": bin_h, "bin_w": bin_w,
            "grid_h": grid_h, "grid_w": grid_w}


def axis_taps(start: Tensor, bin_size: Tensor, grid: int, size: int, limit: int, first: int = 0):
    """Bilinear taps along one axis for samples `first .. first + grid_chunk` of every bin.

    start, bin_size: Tensor[n] float32. Sample k of bin p sits at
    start + p * bin + (k + 0.5) * bin / grid (torchvision's order of operations). Returns
    (index Tensor[n, size, g, 2] int64, weight Tensor[n, size, g, 2] float32, valid Tensor[n, size, g])
    where g = number of samples in this chunk; samples outside [-1, limit] are invalid (weight 0).
    """
    n_samples = min(grid - first, _CHUNK_BINS)
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
    coord = torch.where(at_edge, low.to(torch.float32), coord)
    frac = coord - low
    index = torch.stack([low, high], -1)
    weight = torch.stack([1.0 - frac, frac], -1)
    return index, weight, valid


def _gather(table: Tensor, geo: dict[str, Tensor], hw: tuple[int, int], size: int, gh: int, gw: int) -> Tensor:
    """Pool RoIs sharing one (gh, gw) grid: Tensor[n, size, size, C] via one weighted gather."""
    h, w = hw
    n = geo["start_h"].shape[0]
    yi, yw, yv = axis_taps(geo["start_h"], geo["bin_h"], gh, size, h)
    xi, xw, xv = axis_taps(geo["start_w"], geo["bin_w"], gw, size, w)
    base = geo["batch"] * (h * w)
    # [n, P, gh, 2] x [n, Q, gw, 2] -> [n, P, Q, gh, 2, gw, 2]
    rows = (base[:, None, None, None] + yi * w)[:, :, None, :, :, None, None]
    pos = rows + xi[:, None, :, None, None, :, :]
    wy = (yw * yv[..., None])[:, :, None, :, :, None, None]
    wx = (xw * xv[..., None])[:, None, :, None, None, :, :]
    weight = wy * wx / float(max(gh * gw, 1))
    taps = 4 * gh * gw
    pos, weight = pos.reshape(n * size * size, taps), weight.reshape(n * size * size, taps)
    out = torch.empty((n * size * size, table.shape[1]), dtype=torch.float32)
    for s in range(0, pos.shape[0], _CHUNK_BINS):
        e = s + _CHUNK_BINS
        out[s:e] = F.embedding_bag(pos[s:e], table, per_sample_weights=weight[s:e], mode="sum")
    return out.view(n, size, size, -1)


def _separable(fmap: Tensor, geo: dict[str, Tensor], hw: tuple[int, int], size: int, gh: int, gw: int) -> Tensor:
    """One RoI with a large sampling grid: Tensor[size, size, C] = Wy @ F @ Wx^T / count.

    fmap: Tensor[B, H, W, C]. Per-axis weights are accumulated over samples in chunks, so the
    cost is O(samples + size * H * W * C) whatever the grid size.
    """
    h, w = hw
    wy = _axis_matrix(geo["start_h"], geo["bin_h"], gh, size, h)  # [P, H]
    wx = _axis_matrix(geo["start_w"], geo["bin_w"], gw, size, w)  # [Q, W]
    rows = torch.where(wy.abs().sum(0) > 0)[0]
    cols = torch.where(wx.abs().sum(0) > 0)[0]
    if rows.numel() == 0 or cols.numel() == 0:
        return fmap.new_zeros((size, size, fmap.shape[-1]), dtype=torch.float32)
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    crop = fmap[int(geo["batch"][0]), r0:r1, c0:c1].float()  # [h', w', C]
    tmp = torch.einsum("ph,hwc->pwc", wy[:, r0:r1], crop)
    return torch.einsum("qw,pwc->pqc", wx[:, c0:c1], tmp) / float(max(gh * gw, 1))


def _axis_matrix(start: Tensor, bin_size: Tensor, grid: int, size: int, limit: int) -> Tensor:
    """Dense Tensor[size, limit] of summed tap weights along one axis for a single RoI."""
    mat = torch.zeros((size, limit), dtype=torch.float64)
    for first in range(0, grid, _CHUNK_BINS):
        index, weight, valid = axis_taps(start, bin_size, grid, size, limit, first)
        weight = (weight * valid[..., None]).double()
        mat.scatter_add_(1, index[0].reshape(size, -1), weight[0].reshape(size, -1))
    return mat.float()


def _raster_order(rois: Tensor, width: float) -> Tensor:
    """Permutation visiting RoIs by batch, then row-major centre position (cache locality)."""
    cy = (rois[:, 2] + rois[:, 4]) * 0.5
    cx = (rois[:, 1] + rois[:, 3]) * 0.5
    band = torch.floor(cy / 64.0)
    key = (rois[:, 0] * 1e6 + band) * (width * 2 + 1e4) + cx
    return torch.argsort(key.double(), stable=True)
