"""Reference batched NMS: torchvision.ops.batched_nms."""

from __future__ import annotations

from torch import Tensor
from torchvision.ops import batched_nms


def nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float, max_output: int = -1) -> Tensor:
    """Class-aware NMS.

    boxes: Tensor[N, 4] xyxy; scores: Tensor[N]; classes: Tensor[N] int64 (boxes of different
    classes never suppress each other). A box is suppressed when its IoU with a higher-scored
    kept box of its class is > iou_threshold. Returns Tensor[K] int64 indices into boxes,
    by decreasing score, truncated to max_output when max_output >= 0.
    """
    keep = batched_nms(boxes, scores, classes, iou_threshold)
    return keep if max_output < 0 else keep[:max_output]
