"""The three ops (and the fused paste) as torch custom ops: torch.ops.maskrt.*.

CPU kernel = the `cpu` implementation, CUDA kernel = the `triton` implementation (imported on
first CUDA call), plus fake (meta) implementations for shape inference under torch.compile /
torch.export. NMS and the packed crops of paste_id_map have data-dependent sizes
(ctx.new_dynamic_size()). Outputs never alias inputs (custom-op rule); roi_align's is contiguous.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .nms import cpu as _nms_cpu
from .paste import cpu as _paste_cpu
from .roi_align import cpu as _roi_align_cpu


@torch.library.custom_op("maskrt::roi_align", mutates_args=())
def roi_align(features: list[Tensor], rois: Tensor, spatial_scales: list[float], output_size: int,
              sampling_ratio: int = 2, aligned: bool = False, canonical_size: int = 224,
              canonical_level: int = 4) -> Tensor:
    """Multi-level RoIAlign -> Tensor[R, C, S, S] (see roi_align/README.md)."""
    return _roi_align_cpu.roi_align(features, rois, spatial_scales, output_size, sampling_ratio, aligned,
                                    canonical_size, canonical_level).contiguous()


@roi_align.register_kernel("cuda")
def _roi_align_cuda(features, rois, spatial_scales, output_size, sampling_ratio=2, aligned=False,
                    canonical_size=224, canonical_level=4):
    from .roi_align.triton import roi_align as fn

    return fn(features, rois, spatial_scales, output_size, sampling_ratio, aligned, canonical_size, canonical_level)


@roi_align.register_fake
def _roi_align_fake(features, rois, spatial_scales, output_size, sampling_ratio=2, aligned=False,
                    canonical_size=224, canonical_level=4):
    first = features[0]
    return first.new_empty((rois.shape[0], first.shape[1], output_size, output_size))


@torch.library.custom_op("maskrt::nms", mutates_args=())
def nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float, max_output: int = -1) -> Tensor:
    """Batched NMS -> Tensor[K] int64 (see nms/README.md)."""
    return _nms_cpu.nms(boxes, scores, classes, iou_threshold, max_output).clone()


@nms.register_kernel("cuda")
def _nms_cuda(boxes, scores, classes, iou_threshold, max_output=-1):
    from .nms.triton import nms as fn

    return fn(boxes, scores, classes, iou_threshold, max_output)


@nms.register_fake
def _nms_fake(boxes, scores, classes, iou_threshold, max_output=-1):
    k = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((k,), dtype=torch.int64)


@torch.library.custom_op("maskrt::paste", mutates_args=())
def paste(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5) -> Tensor:
    """Mask paste -> Tensor[N, H, W] bool (see paste/README.md)."""
    return _paste_cpu.paste(masks, boxes, height, width, threshold)


@paste.register_kernel("cuda")
def _paste_cuda(masks, boxes, height, width, threshold=0.5):
    from .paste.triton import paste as fn

    return fn(masks, boxes, height, width, threshold)


@paste.register_fake
def _paste_fake(masks, boxes, height, width, threshold=0.5):
    return masks.new_empty((masks.shape[0], height, width), dtype=torch.bool)


@torch.library.custom_op("maskrt::paste_id_map", mutates_args=())
def paste_id_map(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5,
                 scores: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fused paste -> (id_map [H, W] int32, regions [N, 4] int64, packed [P] bool, offsets [N + 1] int64)."""
    r = _paste_cpu.paste_id_map(masks, boxes, height, width, threshold, scores)
    return r.id_map, r.regions.clone(), r.packed, r.offsets


@paste_id_map.register_kernel("cuda")
def _paste_id_map_cuda(masks, boxes, height, width, threshold=0.5, scores=None):
    from .paste.triton import paste_id_map as fn

    r = fn(masks, boxes, height, width, threshold, scores)
    dev = masks.device
    return r.id_map, r.regions.to(dev), r.packed, r.offsets.to(dev)


@paste_id_map.register_fake
def _paste_id_map_fake(masks, boxes, height, width, threshold=0.5, scores=None):
    n = masks.shape[0]
    packed = masks.new_empty((torch.library.get_ctx().new_dynamic_size(),), dtype=torch.bool)
    return (masks.new_empty((height, width), dtype=torch.int32), masks.new_empty((n, 4), dtype=torch.int64),
            packed, masks.new_empty((n + 1,), dtype=torch.int64))
