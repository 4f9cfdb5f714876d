"""Triton multi-level RoIAlign: one program per (block of RoIs, block of channels), all levels in one launch.

The host assigns levels (`fpn_levels`, exactly as the reference) and computes each RoI's
geometry (start, bin size, sampling grid: `cpu._geometry`, torchvision's arithmetic; RoIs without
a level get an empty grid and pool to 0); the kernel picks each RoI's feature map from a table of
per-level base pointers and does the sampling and averaging for a [ROI_BLOCK * bins, BLOCK_C]
tile. Features may be float32, float16 or bfloat16 (read as is, geometry and accumulation in
float32, output in the features' dtype) or float64 (geometry and accumulation in float64, as
torchvision's double kernel).
Output: Tensor[R, C, S, S] contiguous.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .._triton import check_device, triton_modules
from .common import assign_levels, check_inputs

ROI_BLOCK = 4
BLOCK_C = 64


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
    """Multi-level RoIAlign on the tensors' device; same contract as the reference."""
    check_inputs(features, rois, spatial_scales, output_size)
    first = features[0]
    n, c, size = rois.shape[0], first.shape[1], output_size
    out = torch.empty((n, c, size, size), dtype=first.dtype, device=first.device)
    if n == 0:
        return out
    check_device(first, rois)
    from . import _kernels
    from .cpu import _geometry, compute_dtype

    triton, tl = triton_modules()
    features = [f.contiguous() for f in features]
    levels = assign_levels(rois, spatial_scales, canonical_size, canonical_level)
    geo = _geometry(rois, levels, features, spatial_scales, [0] * len(features), size, sampling_ratio, aligned)
    dev = first.device
    table = torch.tensor([f.data_ptr() for f in features], dtype=torch.int64, device=dev)
    heights = torch.tensor([f.shape[2] for f in features], dtype=torch.int32, device=dev)
    widths = torch.tensor([f.shape[3] for f in features], dtype=torch.int32, device=dev)
    programs = triton.cdiv(n, ROI_BLOCK)
    pad = programs * ROI_BLOCK - n
    grids = torch.stack([geo["grid_h"], geo["grid_w"]], 1)
    block_grid = torch.cat([grids, grids.new_zeros((pad, 2))]).view(programs, ROI_BLOCK, 2).amax(1)
    acc = compute_dtype(first.dtype)
    real = lambda k: geo[k].to(device=dev, dtype=acc).contiguous()
    i32 = lambda v: v.to(device=dev, dtype=torch.int32).contiguous()
    types = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16,
             torch.float64: tl.float64}  # = common.FEATURE_DTYPES (checked above)
    grid = (programs, triton.cdiv(c, BLOCK_C))
    _kernels.roi_align_kernel[grid](
        table, heights, widths, i32(geo["level"]), i32(rois[:, 0].to(torch.int64)), real("start_h"), real("start_w"),
        real("bin_h"), real("bin_w"), i32(geo["grid_h"]), i32(geo["grid_w"]), i32(block_grid.reshape(-1)), out,
        n, c, size, DTYPE=types[first.dtype], ACC=types[acc], ROI_BLOCK=ROI_BLOCK,
        BINS=triton.next_power_of_2(size * size), BLOCK_C=BLOCK_C)
    return out
