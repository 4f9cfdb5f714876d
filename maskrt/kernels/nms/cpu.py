"""Fast CPU batched NMS with exactly torchvision.ops.batched_nms's kept set and order.

batched_nms switches algorithm by size (see `common.uses_coordinate_trick`); this does the same:
- small inputs: one torchvision NMS over class-offset boxes (the reference's own computation);
- large inputs: one torchvision NMS per class over contiguous class segments. The reference
  finds each class with torch.unique + torch.where over all N boxes and scatters into a mask;
  here one stable sort by class makes every class a slice, so the per-class cost is the NMS alone.
Either way each class sees its boxes in ascending index order, as in the reference, so tied
scores resolve identically; the final order is the reference's (score descending).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import nms as tv_nms

from .common import finish, offset_boxes, order_by_score, prepare, uses_coordinate_trick


def nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float, max_output: int = -1) -> Tensor:
    """Class-aware NMS. boxes: Tensor[N, 4] xyxy; scores: Tensor[N]; classes: Tensor[N] int.

    Returns Tensor[K] int64 indices by decreasing score (ties: lower index first), truncated to
    max_output when >= 0. Rows with NaN score or non-finite box are dropped (common.py).
    """
    p = prepare(boxes, scores, classes)
    if p.boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    if uses_coordinate_trick(p.boxes):
        kept = tv_nms(offset_boxes(p.boxes, p.classes), p.scores, iou_threshold)
    else:
        kept = order_by_score(_per_class_mask(p.boxes, p.scores, p.classes, iou_threshold), p.scores)
    return finish(kept, p, max_output)


def _per_class_mask(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float) -> Tensor:
    """Ascending rows kept by per-class NMS. One stable sort groups the classes into slices.

    Bookkeeping uses index_select and numpy: advanced indexing and unique_consecutive launch
    parallel kernels whose thread start-up costs milliseconds on a busy 2-core machine.
    """
    order_np = np.argsort(classes.cpu().numpy(), kind="stable")
    counts = np.unique(classes.cpu().numpy()[order_np], return_counts=True)[1].tolist()
    order = torch.from_numpy(order_np).to(boxes.device)
    sorted_boxes, sorted_scores = boxes.index_select(0, order), scores.index_select(0, order)
    kept, start = [], 0
    for count in counts:
        if count == 1:
            kept.append(torch.tensor([start], device=boxes.device))
        else:
            kept.append(tv_nms(sorted_boxes[start : start + count], sorted_scores[start : start + count],
                               iou_threshold).add_(start))
        start += count
    return torch.sort(order.index_select(0, torch.cat(kept)))[0]
