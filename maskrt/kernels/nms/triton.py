"""Triton batched NMS: a parallel IoU bitmask, then a single-program greedy scan.

Like torchvision's CUDA NMS: boxes are put in score order on the host (the same `sort` call as
the reference), kernel 1 computes, for every box i and every 64-box column block, a 64-bit word
whose bit j says "box j comes after i, is of the same class (or class-offset, see
common.uses_coordinate_trick) and has IoU(i, j) > threshold" — all words in parallel, one
program per (row block, column block). Kernel 2 is one program that walks the boxes in order
keeping a vector of "removed" words: box i is kept unless its bit is set, and then its row of
words is OR-ed in. (torchvision copies the mask to the host for this scan; keeping it on the
device avoids the copy.) The IoU is computed with torchvision's CPU formula and float32
operations in the same order, divide rounded to nearest, no FMA contraction, and the double
threshold replaced by the equivalent float32 one, so the kept set is identical. float64 boxes
are processed in float64 with the double threshold, as torchvision's kernel does for them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._triton import check_device, launch_options, triton_modules
from .common import (
    finish,
    float32_threshold,
    offset_boxes,
    order_by_score,
    per_class_order,
    prepare,
    uses_coordinate_trick,
)

BLOCK_ROWS = 64
WORD = 64


def nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float, max_output: int = -1) -> Tensor:
    """Class-aware NMS on the tensors' device; same contract and result as the reference."""
    p = prepare(boxes, scores, classes)
    n = p.boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    check_device(p.boxes)
    trick = uses_coordinate_trick(p.boxes)
    work = offset_boxes(p.boxes, p.classes) if trick else p.boxes  # float32, or float64 (common.prepare)
    if trick:
        order = p.scores.sort(dim=0, descending=True, stable=True)[1]
    else:
        order = per_class_order(p.scores, p.classes)[0]
    keep_sorted = suppress(work[order], p.classes[order], iou_threshold, check_class=not trick)
    kept = order[keep_sorted]
    if not trick:
        kept = order_by_score(torch.sort(kept)[0], p.scores)
    return finish(kept, p, max_output)


def suppress(boxes: Tensor, classes: Tensor, iou_threshold: float, check_class: bool) -> Tensor:
    """Greedy NMS over boxes already in processing order. boxes: Tensor[n, 4] float32 or float64
    (the IoU is computed in that dtype); classes: Tensor[n] int64. Returns Tensor[k] int64
    positions (ascending) of the kept boxes."""
    mask_kernel, scan_kernel = _get_kernels()
    triton, _ = triton_modules()
    n = boxes.shape[0]
    boxes = boxes.contiguous()
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = ((x2 - x1) * (y2 - y1)).contiguous()  # torchvision computes the areas with torch, like this
    words = triton.cdiv(n, WORD)
    mask = torch.zeros((n, words), dtype=torch.int64, device=boxes.device)
    grid = (triton.cdiv(n, BLOCK_ROWS), words)
    double = boxes.dtype == torch.float64
    threshold = torch.tensor([iou_threshold if double else float32_threshold(iou_threshold)], dtype=boxes.dtype,
                             device=boxes.device)
    mask_kernel[grid](boxes, areas, classes.contiguous(), mask, n, words, threshold,
                      CHECK_CLASS=check_class, BLOCK_ROWS=BLOCK_ROWS, WORD=WORD, **launch_options())
    keep = torch.zeros(n, dtype=torch.int8, device=boxes.device)
    removed = torch.zeros(words, dtype=torch.int64, device=boxes.device)
    scan_kernel[(1,)](mask, removed, keep, n, words, WORDS_P2=triton.next_power_of_2(words), WORD=WORD)
    return torch.where(keep.bool())[0]


def _get_kernels():
    """The jitted kernels; importing them imports triton (done on first use only)."""
    from . import _kernels

    return _kernels.iou_mask_kernel, _kernels.greedy_scan_kernel
