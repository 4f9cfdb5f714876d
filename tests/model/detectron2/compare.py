"""Comparing maskrt's outputs with detectron2's goldens: ranked lists matched up to float rounding.

maskrt and detectron2 compute the same operations in other kernels (OpenVINO's convolutions,
another thread count), so values agree to float rounding, not bit for bit. Rounding can change a
discrete decision only where two quantities tie within it: a score at the top-k cutoff or at the
score threshold, or an IoU at the NMS threshold. `match_ranked` pairs the two lists (same label,
box within box_tol, score within score_tol) and requires every entry left unpaired to sit at such
a tie (within `margin` of the cutoff score or the threshold, or at an IoU within 1e-4 of the NMS
threshold with a higher-scoring box of its class); anything else is a real difference.
"""

from __future__ import annotations

import numpy as np
import torch

from maskrt.kernels.paste.common import detectron2_probs
from tests.model.detectron2.weights import decode_mask


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


def _marginal(k: int, boxes, scores, labels, cap, threshold, nms_iou, margin) -> bool:
    s = scores[k]
    if cap is not None and len(scores) >= cap and abs(s - scores[-1]) <= margin:
        return True
    if threshold is not None and abs(s - threshold) <= margin:
        return True
    if nms_iou is not None:
        higher = (scores >= s - margin) & (labels == labels[k])
        higher[k] = False
        if higher.any() and (np.abs(_iou(boxes[k], boxes[higher]) - nms_iou) <= 1e-4).any():
            return True
    return False


def match_ranked(ours: tuple, gold: tuple, box_tol: float, score_tol: float, cap=None, threshold=None,
                 nms_iou=None, margin=None) -> list[tuple[int, int]]:
    """ours, gold: (boxes [N, 4], scores [N], labels [N] or None). Returns (gold index, our index)
    pairs; asserts that every unpaired entry of either list is marginal (see the module docstring)."""
    (ob, os_, ol), (gb, gs, gl) = ((np.asarray(b, np.float64), np.asarray(s, np.float64),
                                    np.zeros(len(s), np.int64) if lab is None else np.asarray(lab))
                                   for b, s, lab in (ours, gold))
    margin = score_tol if margin is None else margin
    used = np.zeros(len(os_), bool)
    pairs = []
    for i in range(len(gs)):
        ok = ~used & (ol == gl[i]) & (np.abs(os_ - gs[i]) <= score_tol) & (np.abs(ob - gb[i]).max(1) <= box_tol)
        if ok.any():
            j = int(np.argmax(ok))
            used[j] = True
            pairs.append((i, j))
    paired_gold = {i for i, _ in pairs}
    for name, (b, s, lab), unpaired in (("golden", (gb, gs, gl), [i for i in range(len(gs)) if i not in paired_gold]),
                                        ("maskrt", (ob, os_, ol), list(np.where(~used)[0]))):
        real = [int(k) for k in unpaired if not _marginal(k, b, s, lab, cap, threshold, nms_iou, margin)]
        assert not real, (f"{name} entries {real[:5]} (of {len(s)}) have no counterpart and are not at a tie: "
                          f"scores {s[real[:5]]}, boxes {b[real[:5]].tolist()}")
    return pairs


def assert_masks_agree(pairs, masks: np.ndarray, probs: np.ndarray, boxes: np.ndarray, gold_masks, band: float) -> None:
    """Our pasted masks equal the oracle's (bool [H, W] arrays, or COCO RLEs) except pixels whose
    pasted probability (ours, from our 28x28 probabilities and box) is within `band` of 0.5."""
    for i, j in pairs:
        gold = gold_masks[i]
        differ = masks[j] != (decode_mask(gold) if isinstance(gold, dict) else gold)
        if not differ.any():
            continue
        ys, xs = np.nonzero(differ)
        p = detectron2_probs(torch.from_numpy(probs[j]), torch.from_numpy(boxes[j]), torch.from_numpy(ys),
                             torch.from_numpy(xs)).numpy()[np.arange(len(ys)), np.arange(len(xs))]
        assert (np.abs(p - 0.5) <= band).all(), f"detection {j}: {int(differ.sum())} pixels differ, not at 0.5: {p}"
