"""Triton multi-level RoIAlign: one program per (RoI, block of channels, block of bins), all levels in one launch.

Everything happens in the one kernel: each program assigns its RoI's FPN level (FPN eq. 1 as the
reference computes it: a square root, an IEEE division and comparisons with thresholds found on
the host from the reference itself, common.level_thresholds), picks that level's map among up
to five map pointers, computes the RoI's geometry (`cpu._geometry`'s arithmetic) and pools a
block of at most 64 of its S x S bins x 32 channels (no spills: the old tile of 4 RoIs x all
bins x 64 channels spilled 6.5 KB, or 25.7 KB at S = 14, per thread). Features may be float32,
float16 or bfloat16 (read as is, geometry and accumulation in float32, output in the features'
dtype) or float64 (float64 throughout, as torchvision's double kernel). Output: Tensor[R, C, S, S]
contiguous. The same kernel, launched by TensorRT, is the MultiLevelRoIAlign AOT plugin.

Numerics: torchvision's CPU kernel's operations in its order, IEEE divisions and no FMA
contraction (launch_options), so the result is bit-identical to torchvision's CPU kernel in
float32 (tested under the interpreter; on a GPU make gpu-check asserts it). torchvision's CUDA
kernel is compiled with FMA contraction: against it the bins differ by rounding (a few ulp).

Invalid RoIs: one with a NaN or inf value, or a batch index outside [0, B), pools to zero here
(the reference and the cpu implementation raise ValueError): checking on the host would be a
host read, i.e. a sync, per call. No host read, no host-to-device copy (map pointers, sizes,
scales and level thresholds are kernel arguments), and no per-frame size (RoI count, map sizes)
is specialized: warm-up compiles every variant.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .._triton import check_device, interpreted, launch_options, triton_modules
from .common import check_shapes, kernel_levels

MAX_LEVELS = 5
BIN_BLOCK = 64
BLOCK_C = 32
NUM_WARPS = 8  # 8 elements of the 32 x 64 tile a thread (at 4 warps triton 3.6 spills: test_ptx)
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
    from . import _kernels

    triton, _ = triton_modules()
    args, constexprs = kernel_arguments(features, rois, spatial_scales, sampling_ratio, canonical_size,
                                        canonical_level, level_mapper)
    wide = first.dtype == torch.float64  # float64 accumulators: half the tile (triton 3.6 spills the full one)
    bin_block = min(BIN_BLOCK // (2 if wide else 1), triton.next_power_of_2(size * size))
    roi_block, block_c = 1, BLOCK_C
    if interpreted():  # the interpreter pays per operation, not per element: few, large tiles
        bin_block, block_c = triton.next_power_of_2(size * size), triton.next_power_of_2(c)
        roi_block = max(1, INTERPRETER_TILE // (bin_block * block_c))
    grid = (triton.cdiv(n, roi_block), triton.cdiv(c, block_c), triton.cdiv(size * size, bin_block))
    _kernels.roi_align_kernel[grid](*args, out, **constexprs, SIZE=size, ALIGNED=bool(aligned),
                                    ROI_BLOCK=roi_block, BIN_BLOCK=bin_block, BLOCK_C=block_c, num_warps=NUM_WARPS,
                                    **launch_options())
    return out


def kernel_arguments(features: Sequence[Tensor], rois: Tensor, spatial_scales: Sequence[float], sampling_ratio: int,
                     canonical_size: int, canonical_level: int, level_mapper: str = "torchvision") -> tuple[list, dict]:
    """(roi_align_kernel's arguments before the output: maps, rois and the int scalars; the
    constexprs of the levels, scales and dtypes). Levels >= len(features) are None."""
    first = features[0]
    from .cpu import compute_dtype

    _, tl = triton_modules()
    absent = MAX_LEVELS - len(features)
    maps = [f.contiguous() for f in features] + [None] * absent
    dims = [int(d) for f in features for d in (f.shape[2], f.shape[3])] + [None] * (2 * absent)
    scales = [float(torch.tensor(float(s), dtype=first.dtype)) for s in spatial_scales]  # as cpu._geometry rounds
    scales += [1.0] * absent
    types = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16,
             torch.float64: tl.float64}  # = common.FEATURE_DTYPES (checked by check_shapes)
    args = [*maps, rois.contiguous(), rois.shape[0], first.shape[1], *dims, sampling_ratio, first.shape[0]]
    constexprs = {**{f"S{i}": s for i, s in enumerate(scales)}, "NUM_LEVELS": len(features),
                  **kernel_levels(spatial_scales, canonical_size, canonical_level, rois.dtype, level_mapper),
                  "DTYPE": types[first.dtype], "ACC": types[compute_dtype(first.dtype)]}
    return args, constexprs
