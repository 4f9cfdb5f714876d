"""Reference multi-level RoIAlign: torchvision's MultiScaleRoIAlign semantics, clear and slow."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import roi_align as tv_roi_align
from torchvision.ops.boxes import box_area


LEVEL_MAPPERS = ("torchvision", "detectron2")


def fpn_levels(
    boxes: Tensor, k_min: int, k_max: int, canonical_size: int = 224, canonical_level: int = 4, eps: float = 1e-6,
    mapper: str = "torchvision",
) -> Tensor:
    """FPN eq. 1: level index (0 = k_min) for each box, or -1 for a box with negative area.

    boxes: Tensor[R, 4] xyxy in input-image pixels. Returns Tensor[R] int64 in [-1, k_max - k_min].
    mapper "torchvision" (torchvision's LevelMapper): level = clamp(floor(canonical_level +
    log2(sqrt(area) / canonical_size) + eps), k_min, k_max) - k_min, eps = 1e-6 added after the log.
    mapper "detectron2" (detectron2's assign_boxes_to_levels): level = clamp(floor(canonical_level +
    log2(sqrt(area) / canonical_size + 1e-8)), k_min, k_max) - k_min, the 1e-8 inside the log (`eps`
    is not used). Both in the boxes' dtype (float32). They differ only for sqrt(area) within ~1e-6
    relative below canonical_size * 2 ** k, where torchvision's eps lifts the box one level up.
    A box with x2 < x1 or y2 < y1 (one of the two) has a negative area and a NaN level; torchvision's
    LevelMapper casts that NaN to int64 (INT64_MIN on x86), which matches no level, so
    MultiScaleRoIAlign leaves such a RoI at zero (as does detectron2's ROIPooler). -1 says the same
    without relying on the cast.
    """
    if mapper not in LEVEL_MAPPERS:
        raise ValueError(f"unknown level mapper {mapper!r}; choose from {', '.join(LEVEL_MAPPERS)}")
    s = torch.sqrt(box_area(boxes))
    return levels_of_ratio(s / canonical_size, k_min, k_max, canonical_level, eps, mapper)


def levels_of_ratio(q: Tensor, k_min: int, k_max: int, canonical_level: int = 4, eps: float = 1e-6,
                    mapper: str = "torchvision") -> Tensor:
    """fpn_levels from q = sqrt(area) / canonical_size (any float dtype, computed in it): Tensor[R] int64."""
    if mapper == "detectron2":
        target = torch.floor(canonical_level + torch.log2(q + 1e-8))
    else:
        target = torch.floor(canonical_level + torch.log2(q) + torch.tensor(eps, dtype=q.dtype))
    target = torch.clamp(target, min=k_min, max=k_max)
    return torch.where(torch.isnan(target), -1, target.nan_to_num(0.0).to(torch.int64) - k_min)


def level_range(spatial_scales: Sequence[float]) -> tuple[int, int]:
    """(k_min, k_max) from the first and last level's scale (scale = 2 ** -k)."""
    return int(-math.log2(spatial_scales[0])), int(-math.log2(spatial_scales[-1]))


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
    """Multi-level RoIAlign.

    features: L tensors Tensor[B, C, H_l, W_l] (one per FPN level, finest first).
    rois: Tensor[R, 5] rows (batch_index, x1, y1, x2, y2) in input-image pixels.
    spatial_scales: L floats, 1 / stride of each level (powers of two).
    Each RoI is pooled from the level chosen by `fpn_levels`; `aligned=False` is torchvision's
    Mask R-CNN default (no half-pixel offset), `aligned=True` shifts by -0.5 px (Detectron2).
    sampling_ratio <= 0 means adaptive: ceil(roi_size / output_size) samples per bin.
    level_mapper: "torchvision" or "detectron2", the level formula (see `fpn_levels`).
    Returns Tensor[R, C, output_size, output_size] in the features' dtype.
    As torchvision's MultiScaleRoIAlign: with one level every RoI is pooled from it (no level
    mapping); with several, a RoI whose level is -1 (negative area, see `fpn_levels`) or has no
    feature map (scales not consecutive) stays zero.
    """
    first = features[0]
    result = first.new_zeros((rois.shape[0], first.shape[1], output_size, output_size))
    if rois.shape[0] == 0:
        return result
    k_min, k_max = level_range(spatial_scales)
    if len(features) == 1:
        levels = torch.zeros(rois.shape[0], dtype=torch.int64, device=rois.device)
    else:
        levels = fpn_levels(rois[:, 1:], k_min, k_max, canonical_size, canonical_level, mapper=level_mapper)
    for level, (feature, scale) in enumerate(zip(features, spatial_scales)):
        idx = torch.where(levels == level)[0]
        pooled = tv_roi_align(
            feature,
            rois[idx].to(feature.dtype),
            output_size=output_size,
            spatial_scale=scale,
            sampling_ratio=sampling_ratio,
            aligned=aligned,
        )
        result[idx] = pooled.to(result.dtype)
    return result
