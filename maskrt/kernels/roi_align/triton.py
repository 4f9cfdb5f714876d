"""Triton multi-level RoIAlign: one program per (RoI, block of channels, block of bins), all levels in one launch.

The levels are assigned on the device with torch ops (`assign_levels`, exactly as the reference:
FPN eq. 1, -1 for a RoI of negative area); everything else happens in the kernel: each program
picks its RoI's level map among up to five map pointers, computes the RoI's geometry
(`cpu._geometry`'s arithmetic) and pools a block of at most 64 of its S x S bins x 32
channels (no spills: the old tile of 4 RoIs x all bins x 64 channels spilled 6.5 KB, or 25.7 KB
at S = 14, per thread). Features may be float32, float16 or bfloat16 (read as is, geometry and
accumulation in float32, output in the features' dtype) or float64 (float64 throughout, as
torchvision's double kernel). Output: Tensor[R, C, S, S] contiguous.

Numerics: torchvision's CPU kernel's operations in its order, IEEE divisions and no FMA
contraction (launch_options), so the result is bit-identical to torchvision's CPU kernel in
float32 (tested under the interpreter; on a GPU make gpu-check asserts it). torchvision's CUDA
kernel is compiled with FMA contraction: against it the bins differ by rounding (a few ulp).

Host reads: one, the input check (NaN/inf RoIs, batch index range: `_triton.host_read`); no
tables are copied to the device (map pointers, sizes and scales are kernel arguments), and no
per-frame size (RoI count, map sizes) is specialized: warm-up compiles every variant.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .. import _triton
from .._triton import check_device, interpreted, launch_options, triton_modules
from .common import assign_levels, check_shapes, raise_rois_problem, rois_problem

MAX_LEVELS = 5
BIN_BLOCK = 64
BLOCK_C = 32
NUM_WARPS = 4  # 16 elements of the 32 x 64 tile a thread
INTERPRETER_TILE = 1 << 16  # elements of one tile under TRITON_INTERPRET (a power of two)


def roi_align(
    features: Sequence[Tensor],
    rois: Tensor,
    spatial_scales: Sequence[float],
    output_size: int,
    sampling_ratio: int = 2,
    aligned: bool = False,
    canonical_size: int = 224,
    canonical_level: int = 4,
    level_mapper: str = "torchvision",
) -> Tensor:
    """Multi-level RoIAlign on the tensors' device; same contract as the reference."""
    check_shapes(features, rois, spatial_scales, output_size)
    if len(features) > MAX_LEVELS:
        raise ValueError(f"the triton roi_align takes at most {MAX_LEVELS} feature levels, got {len(features)}")
    first = features[0]
    n, c, size = rois.shape[0], first.shape[1], output_size
    out = torch.empty((n, c, size, size), dtype=first.dtype, device=first.device)
    if n == 0:
        return out
    check_device(first, rois)
    (problem,) = _triton.host_read(rois_problem(rois, first.shape[0]).reshape(1), [0], "roi_align input check")
    raise_rois_problem(problem, first.shape[0])
    from . import _kernels
    from .cpu import compute_dtype

    triton, tl = triton_modules()
    levels = assign_levels(rois, spatial_scales, canonical_size, canonical_level, level_mapper).contiguous()
    maps = [f.contiguous() for f in features]
    maps += [maps[0]] * (MAX_LEVELS - len(maps))
    dims = [d for f in maps for d in (f.shape[2], f.shape[3])]
    scales = [float(torch.tensor(float(s), dtype=first.dtype)) for s in spatial_scales]  # as cpu._geometry rounds them
    scales += [1.0] * (MAX_LEVELS - len(scales))
    types = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16,
             torch.float64: tl.float64}  # = common.FEATURE_DTYPES (checked above)
    bin_block, roi_block, block_c = min(BIN_BLOCK, triton.next_power_of_2(size * size)), 1, BLOCK_C
    if interpreted():  # the interpreter pays per operation, not per element: few, large tiles
        bin_block, block_c = triton.next_power_of_2(size * size), triton.next_power_of_2(c)
        roi_block = max(1, INTERPRETER_TILE // (bin_block * block_c))
    grid = (triton.cdiv(n, roi_block), triton.cdiv(c, block_c), triton.cdiv(size * size, bin_block))
    _kernels.roi_align_kernel[grid](
        *maps, rois.contiguous(), levels, out, n, c, *dims, sampling_ratio,
        **{f"S{i}": s for i, s in enumerate(scales)}, NUM_LEVELS=len(features), SIZE=size, ALIGNED=bool(aligned),
        DTYPE=types[first.dtype], ACC=types[compute_dtype(first.dtype)],
        ROI_BLOCK=roi_block, BIN_BLOCK=bin_block, BLOCK_C=block_c, num_warps=NUM_WARPS,
        **launch_options())
    return out
