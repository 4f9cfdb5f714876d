"""Checks and level assignment shared by the roi_align implementations."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

from .reference import LEVEL_MAPPERS, fpn_levels, level_range, levels_of_ratio

FEATURE_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def check_shapes(features: Sequence[Tensor], rois: Tensor, spatial_scales: Sequence[float], output_size: int) -> None:
    """Raise ValueError for inputs no implementation can pool meaningfully, reading no tensor values
    (no host read on a GPU): features L tensors Tensor[B, C, H_l, W_l] of one dtype (FEATURE_DTYPES)
    and device, rois Tensor[R, 5], L spatial scales, output_size >= 1. The RoIs' values (NaN or inf,
    a batch index outside [0, B)) are checked where they are read: the CPU kernel's geometry pass
    (raise_rois_problem); the Triton kernel pools such a RoI to zero."""
    if len(features) == 0 or len(features) != len(spatial_scales):
        raise ValueError(f"roi_align needs one spatial scale per feature level, got {len(features)} levels "
                         f"and {len(spatial_scales)} scales")
    first = features[0]
    for f in features:
        if f.dim() != 4 or f.shape[:2] != first.shape[:2] or f.dtype != first.dtype or f.device != first.device:
            raise ValueError("roi_align features must be Tensor[B, C, H, W] with the same B, C, dtype and device")
    if first.dtype not in FEATURE_DTYPES:
        raise ValueError(f"roi_align features must be float32, float16, bfloat16 or float64, got {first.dtype}")
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"roi_align rois must be Tensor[R, 5] (batch_index, x1, y1, x2, y2), got {tuple(rois.shape)}")
    if output_size < 1:
        raise ValueError(f"roi_align output_size must be >= 1, got {output_size}")


def raise_rois_problem(code: int, batch_size: int) -> None:
    """ValueError for a problem code: 1 a NaN or inf coordinate, 2 a batch index out of range (0: none)."""
    if code == 1:
        raise ValueError("roi_align rois contain NaN or inf coordinates")
    if code == 2:
        raise ValueError(f"roi_align batch index out of range [0, {batch_size})")


def assign_levels(rois: Tensor, spatial_scales: Sequence[float], canonical_size: int, canonical_level: int,
                  level_mapper: str = "torchvision") -> Tensor:
    """Tensor[R] int64 level index (0 = first feature) of each RoI, exactly as the reference assigns it.

    One level: 0 for every RoI (torchvision's MultiScaleRoIAlign maps no levels then). Several:
    `fpn_levels`, -1 for a RoI of negative area; an index >= L is possible when the scales are not
    consecutive powers of two. Such RoIs (outside [0, L)) pool to zero, as in torchvision.
    level_mapper: the level formula, "torchvision" or "detectron2" (`fpn_levels`).
    """
    if len(spatial_scales) == 1:
        return torch.zeros(rois.shape[0], dtype=torch.int64, device=rois.device)
    k_min, k_max = level_range(spatial_scales)
    return fpn_levels(rois[:, 1:], k_min, k_max, canonical_size, canonical_level, mapper=level_mapper)


def kernel_levels(spatial_scales: Sequence[float], canonical_size: int, canonical_level: int,
                  rois_dtype: torch.dtype, level_mapper: str = "torchvision") -> dict:
    """The level constexprs of roi_align_kernel (_kernels._fpn_level): MAP_LEVELS, CANONICAL, NUM_T,
    T1..T5, so that the kernel assigns each RoI the level `assign_levels` gives it (either level
    mapper: only the thresholds differ). q is float64 for float64 RoIs, float32 otherwise
    (torchvision's box_area upcasts float16 and bfloat16)."""
    if level_mapper not in LEVEL_MAPPERS:
        raise ValueError(f"unknown level mapper {level_mapper!r}; choose from {', '.join(LEVEL_MAPPERS)}")
    n = len(spatial_scales)
    k_min, k_max = level_range(spatial_scales)
    q_dtype = torch.float64 if rois_dtype == torch.float64 else torch.float32
    count = min(k_max - k_min, n)
    thresholds = level_thresholds(q_dtype, k_min, k_max, canonical_level, count, mapper=level_mapper) if n > 1 else ()
    padded = (*thresholds, *[0.0] * (5 - len(thresholds)))
    return {"MAP_LEVELS": n > 1, "CANONICAL": float(canonical_size), "NUM_T": len(thresholds),
            **{f"T{j + 1}": t for j, t in enumerate(padded)}}


_BITS = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
         torch.float64: torch.int64}


@functools.lru_cache(maxsize=64)
def level_thresholds(dtype: torch.dtype, k_min: int, k_max: int, canonical_level: int = 4, count: int | None = None,
                     eps: float = 1e-6, mapper: str = "torchvision") -> tuple[float, ...]:
    """(t_1, ..., t_count): t_j the smallest q of `dtype` (q = sqrt(area) / canonical_size) that the
    reference puts at level index >= j (reference.levels_of_ratio, evaluated by torch on the CPU as
    the reference evaluates it). So level index = #{j: q >= t_j} for every q, NaN aside: what the
    kernels compute with a square root, a division and comparisons instead of a log2 (whose
    rounding would have to match torch's at every boundary). count: thresholds wanted (default
    k_max - k_min). Found by bisection over the bit patterns of positive values (ordered as the
    values); the level is non-decreasing in q. Python floats, exact in `dtype`.
    Computed once per configuration, on the host: also under fake tensors (gpu_verify.fake_cuda)."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    count = k_max - k_min if count is None else count
    bits = _BITS[dtype]
    positive_inf = int(torch.tensor(float("inf"), dtype=dtype).view(bits))

    def level(pattern: int) -> int:
        q = torch.tensor([pattern] * 16, dtype=bits).view(dtype)  # a vector: torch's vectorised path
        return int(levels_of_ratio(q, k_min, k_max, canonical_level, eps, mapper)[0])

    out = []
    with unset_fake_temporarily():
        for j in range(1, count + 1):
            lo, hi = 0, positive_inf  # level(lo) < j <= level(hi) (+0.0: k_min, +inf: k_max)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if level(mid) < j else (lo, mid)
            out.append(float(torch.tensor(hi, dtype=bits).view(dtype)))
    return tuple(out)


__all__ = ["FEATURE_DTYPES", "assign_levels", "check_shapes", "fpn_levels", "kernel_levels", "level_range",
           "level_thresholds", "raise_rois_problem"]
