"""Box conversions and pairwise box IoU. Boxes are xyxy (x0, y0, x1, y1) in image pixels."""

from __future__ import annotations

import numpy as np


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """float [N, 4] xyxy -> float64 [N, 4] (centre x, centre y, width / height, height)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """float [N, 4+] (centre x, centre y, aspect, height, ...) -> float64 [N, 4] xyxy."""
    cx, cy, a, h = (xyah[:, i] for i in range(4))
    w = a * h
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU: a float [N, 4], b float [M, 4] xyxy -> float64 [N, M].

    An inverted box (x1 < x0 or y1 < y0, as a long extrapolation can make) has zero area.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    inter_w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    inter_h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = inter_w.clip(0) * inter_h.clip(0)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)


def duplicates(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """bool [N]: True for each box that overlaps a higher-scoring box kept before it with IoU >
    threshold (greedy non-maximum suppression over all classes; equal scores: the earlier box
    first). boxes float [N, 4] xyxy; scores float [N]."""
    n = len(scores)
    dropped = np.zeros(n, dtype=np.bool_)
    if n < 2 or threshold >= 1.0:
        return dropped
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    iou = box_iou(boxes, boxes)
    for k in order:
        if not dropped[k]:
            later = order[np.flatnonzero(order == k)[0] + 1:]
            dropped[later[iou[k, later] > threshold]] = True
    return dropped
