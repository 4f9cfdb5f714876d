"""Fast CPU batched NMS with exactly torchvision.ops.batched_nms's kept set and order.

The greedy scan is a numba-compiled loop (`_greedy_scan`): for each box still standing, in
processing order, it marks every later box of its segment whose IoU exceeds the threshold. The
inner loop has no branches (IoU computed for every later box, OR-ed into `removed`), so LLVM
vectorises it; torchvision's C++ loop tests `suppressed[j]` per pair and stays scalar. The IoU
is torchvision's CPU formula with the same float operations in the same order and no FMA
contraction (numba's default, fastmath off), compared with the float32 threshold equivalent to
torchvision's double comparison, so every kept set is identical.

batched_nms switches algorithm by size (see `common.uses_coordinate_trick`); mirrored here:
- small inputs: one segment of class-offset boxes (the reference's own computation);
- large inputs: one segment per class. One stable sort by score and one stable sort by class
  make every class a contiguous slice in its own score order (ties: lower index first, as the
  reference's stable per-class sort of boxes given in ascending index order).
The final order is the reference's (score descending).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._numba import compiled_on_first_use
from .common import (
    finish,
    float32_threshold,
    offset_boxes,
    order_by_score,
    per_class_order,
    prepare,
    uses_coordinate_trick,
)


def nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float, max_output: int = -1) -> Tensor:
    """Class-aware NMS. boxes: Tensor[N, 4] xyxy; scores: Tensor[N]; classes: Tensor[N] int.

    Returns Tensor[K] int64 indices by decreasing score (ties: lower index first), truncated to
    max_output when >= 0. Rows with NaN score or non-finite box are dropped (common.py).
    """
    p = prepare(boxes, scores, classes)
    if p.boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    if uses_coordinate_trick(p.boxes):
        order = p.scores.sort(descending=True, stable=True)[1]
        segments = np.array([0, order.numel()], dtype=np.int64)
        kept = order[_scan(offset_boxes(p.boxes, p.classes).index_select(0, order), segments, iou_threshold)]
    else:
        order, segments = per_class_order(p.scores, p.classes)
        kept = order[_scan(p.boxes.index_select(0, order), segments, iou_threshold)]
        kept = order_by_score(torch.sort(kept)[0], p.scores)
    return finish(kept.to(boxes.device), p, max_output)


def _scan(boxes: Tensor, segments: np.ndarray, iou_threshold: float) -> Tensor:
    """Greedy NMS within each segment of boxes already in processing order.

    boxes: Tensor[n, 4] float32 or float64 xyxy. Returns Tensor[n] bool, True where kept.
    """
    boxes = boxes.detach().cpu().contiguous()
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = ((x2 - x1) * (y2 - y1)).numpy()  # torchvision computes the areas with torch, like this
    if boxes.dtype == torch.float64:
        threshold = np.float64(iou_threshold)
    else:
        threshold = np.float32(float32_threshold(iou_threshold))
    removed = np.zeros(boxes.shape[0], dtype=np.bool_)
    _greedy_kernel()(boxes.numpy(), areas, segments, threshold, removed)
    return torch.from_numpy(~removed)


def _greedy_scan(boxes, areas, segments, threshold, removed):  # pragma: no cover - compiled by numba
    """boxes: [n, 4] in processing order; areas: [n]; segments: [S + 1] slice bounds; removed: [n]
    bool, written. Box j is removed when an earlier, not removed box i of its segment has
    inter / (area_i + area_j - inter) > threshold (torchvision's CPU IoU, same operation order)."""
    zero = threshold - threshold
    for s in range(segments.shape[0] - 1):
        end = segments[s + 1]
        for i in range(segments[s], end):
            if removed[i]:
                continue
            ix1, iy1, ix2, iy2, iarea = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3], areas[i]
            for j in range(i + 1, end):
                w = max(zero, min(ix2, boxes[j, 2]) - max(ix1, boxes[j, 0]))
                h = max(zero, min(iy2, boxes[j, 3]) - max(iy1, boxes[j, 1]))
                inter = w * h
                removed[j] |= inter / (iarea + areas[j] - inter) > threshold


# IEEE division (kernels/_numba.py): 0/0 is NaN, which never suppresses, as in torchvision.
_greedy_kernel = compiled_on_first_use(_greedy_scan)
