"""torch.ops.maskrt.nms: CPU kernel = cpu, CUDA kernel = triton (imported on first CUDA call), fake with a data-dependent size."""

from __future__ import annotations

import torch
from torch import Tensor

from . import cpu as _cpu


@torch.library.custom_op("maskrt::nms", mutates_args=())
def nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float, max_output: int = -1) -> Tensor:
    """Batched NMS -> Tensor[K] int64 (see nms/README.md)."""
    return _cpu.nms(boxes, scores, classes, iou_threshold, max_output).clone()


@nms.register_kernel("cuda")
def _nms_cuda(boxes, scores, classes, iou_threshold, max_output=-1):
    from .triton import nms as fn

    return fn(boxes, scores, classes, iou_threshold, max_output)


@nms.register_fake
def _nms_fake(boxes, scores, classes, iou_threshold, max_output=-1):
    k = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((k,), dtype=torch.int64)
