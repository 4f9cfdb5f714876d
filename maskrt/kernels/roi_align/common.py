"""Checks and level assignment shared by the roi_align implementations."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .reference import fpn_levels, level_range

FEATURE_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def check_inputs(features: Sequence[Tensor], rois: Tensor, spatial_scales: Sequence[float], output_size: int) -> None:
    """Raise ValueError for inputs no implementation can pool meaningfully.

    features: L tensors Tensor[B, C, H_l, W_l] of one dtype and device; rois: Tensor[R, 5];
    spatial_scales: L floats. RoIs with NaN or +-inf coordinates, or a batch index outside
    [0, B), are rejected (torchvision would read out of bounds or loop forever on them), and so
    are features of a dtype outside FEATURE_DTYPES.
    """
    check_shapes(features, rois, spatial_scales, output_size)
    if rois.shape[0]:
        raise_rois_problem(int(rois_problem(rois, features[0].shape[0])), features[0].shape[0])


def check_shapes(features: Sequence[Tensor], rois: Tensor, spatial_scales: Sequence[float], output_size: int) -> None:
    """The checks of check_inputs that read no tensor values (no host read on a GPU)."""
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


def rois_problem(rois: Tensor, batch_size: int) -> Tensor:
    """Tensor[] int64 on the rois' device: 0 fine, 1 a NaN or inf coordinate, 2 a batch index out of range."""
    batch = rois[:, 0]
    out_of_range = ((batch < 0) | (batch.to(torch.int64) >= batch_size)).any()
    return torch.where(~torch.isfinite(rois).all(), 1, torch.where(out_of_range, 2, 0))


def raise_rois_problem(code: int, batch_size: int) -> None:
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


__all__ = ["FEATURE_DTYPES", "assign_levels", "check_inputs", "check_shapes", "fpn_levels", "level_range",
           "raise_rois_problem", "rois_problem"]
