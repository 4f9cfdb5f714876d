"""torch.ops.maskrt.roi_align: CPU kernel = cpu, CUDA kernel = triton (imported on first CUDA call), fake for shapes."""

from __future__ import annotations

import torch
from torch import Tensor

from . import cpu as _cpu


@torch.library.custom_op("maskrt::roi_align", mutates_args=())
def roi_align(features: list[Tensor], rois: Tensor, spatial_scales: list[float], output_size: int,
              sampling_ratio: int = 2, aligned: bool = False, canonical_size: int = 224,
              canonical_level: int = 4, level_mapper: str = "torchvision") -> Tensor:
    """Multi-level RoIAlign -> Tensor[R, C, S, S] (see roi_align/README.md)."""
    return _cpu.roi_align(features, rois, spatial_scales, output_size, sampling_ratio, aligned,
                          canonical_size, canonical_level, level_mapper).contiguous()


@roi_align.register_kernel("cuda")
def _roi_align_cuda(features, rois, spatial_scales, output_size, sampling_ratio=2, aligned=False,
                    canonical_size=224, canonical_level=4, level_mapper="torchvision"):
    from .triton import roi_align as fn

    return fn(features, rois, spatial_scales, output_size, sampling_ratio, aligned, canonical_size, canonical_level,
              level_mapper)


@roi_align.register_fake
def _roi_align_fake(features, rois, spatial_scales, output_size, sampling_ratio=2, aligned=False,
                    canonical_size=224, canonical_level=4, level_mapper="torchvision"):
    first = features[0]
    return first.new_empty((rois.shape[0], first.shape[1], output_size, output_size))
