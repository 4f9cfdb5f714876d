"""Triton batched NMS, on the device from input to kept set; one host read, of the result size.

Rows whose score is NaN or whose box is not finite are kept in place but flagged invalid and
sorted last (common.valid_first_order): never kept, never suppressing (no host-side filtering).
Which of torchvision's two algorithms applies (common.trick_limit) is decided on the
device too (common.device_trick): the boxes are class-offset and the class check is off when it
holds, the raw boxes with the class check otherwise. Two kernel paths, by the row count n alone:

- n * 4 <= the trick's limit (every input the trick could apply to, e.g. the RPN's proposals):
  like torchvision's CUDA NMS, kernel 1 computes, for every box i and every 64-box column block,
  a 64-bit word whose bit j says "box j comes after i, same class (if checked), IoU > threshold",
  all words in parallel; kernel 2 is one program that walks the boxes in score order keeping a
  vector of "removed" words (on the device: torchvision copies the mask to the host). With the
  class check, walking all classes in one score order keeps the same set as NMS per class.
- above (many boxes of many classes, e.g. 1000 RoIs x 80 classes): one program per class
  segment (rows grouped by class, each by score) resolves blocks of 64 boxes in registers and
  marks what they suppress later in the class (`segment_nms_kernel`): O(n) memory, instead of an
  n x n bitmask of which only the per-class diagonal blocks would matter.

The IoU is torchvision's CPU formula with float32 operations in the same order, divide rounded to
nearest, no FMA contraction, and the double threshold replaced by the equivalent float32 one
(float64 boxes: double arithmetic, double threshold), so the kept set is identical. The result
(kept count and which algorithm applied) is read back once (`_triton.host_read`), then ordered
as torchvision orders it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _triton
from .._triton import check_device, launch_options, triton_modules
from .common import (
    device_inputs,
    device_trick,
    float32_threshold,
    order_by_score,
    trick_limit,
    valid_first_order,
    valid_offset_boxes,
)

BLOCK_ROWS = 64
WORD = 64
SEGMENT_BLOCK = 64
NUM_WARPS = 8  # 64 x 64 tiles: 16 elements a thread (at 4 warps, ~250 registers)


def nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float, max_output: int = -1) -> Tensor:
    """Class-aware NMS on the tensors' device; same contract and result as the reference."""
    b, s, c, valid = device_inputs(boxes, scores, classes)
    n = b.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    check_device(b)
    order, keep, trick = keep_flags(b, s, c, valid, iou_threshold)
    count, trick_applied = _triton.host_read(torch.stack([keep.sum(), trick.to(torch.int64)]), [n, 1],
                                              "nms kept count")
    kept = order.index_select(0, (keep == 0).to(torch.uint8).sort(stable=True)[1][:count])
    if not trick_applied:
        kept = order_by_score(torch.sort(kept)[0], s)
    return kept if max_output < 0 else kept[:max_output]


def keep_flags(b: Tensor, s: Tensor, c: Tensor, valid: Tensor, iou_threshold: float):
    """(order Tensor[n] int64 processing order of the rows, keep Tensor[n] int8 kept flag per
    position in that order, trick Tensor[] bool), all on the device, no host read."""
    n, dev = b.shape[0], b.device
    trick = device_trick(b, valid)
    work = torch.where(trick, valid_offset_boxes(b, c, valid), b)
    work = torch.where(valid[:, None], work, 0.0)  # invalid rows: never kept, their IoUs unread
    thr = iou_threshold if b.dtype == torch.float64 else float32_threshold(iou_threshold)
    threshold = torch.full((), thr, dtype=b.dtype, device=dev)
    if n * 4 <= trick_limit(dev):
        order = valid_first_order(s, valid)
        keep = _dense(work.index_select(0, order), c.index_select(0, order), valid.index_select(0, order),
                      (~trick).to(torch.int8), threshold)
    else:
        order = valid_first_order(s, valid, key=torch.where(trick, 0, c))
        key = torch.where(trick, 0, c).index_select(0, order)
        keep = _segments(work.index_select(0, order), key, valid.index_select(0, order), threshold)
    return order, keep, trick


def _areas(boxes: Tensor) -> Tensor:
    x1, y1, x2, y2 = boxes.unbind(1)
    return ((x2 - x1) * (y2 - y1)).contiguous()  # torchvision computes the areas with torch, like this


def _dense(boxes, classes, valid, check_class, threshold) -> Tensor:
    """Bitmask + scan over boxes in processing order -> Tensor[n] int8 kept flags."""
    mask_kernel, scan_kernel, _ = _get_kernels()
    triton, _ = triton_modules()
    n, dev = boxes.shape[0], boxes.device
    boxes = boxes.contiguous()
    words = triton.cdiv(n, WORD)
    mask = torch.empty((n, words), dtype=torch.int64, device=dev)
    grid = (triton.cdiv(n, BLOCK_ROWS), words)
    mask_kernel[grid](boxes, _areas(boxes), classes.contiguous(), check_class, threshold, mask, n, words,
                      BLOCK_ROWS=BLOCK_ROWS, WORD=WORD, num_warps=NUM_WARPS, **launch_options())
    keep = torch.empty(n, dtype=torch.int8, device=dev)
    removed = torch.zeros(words, dtype=torch.int64, device=dev)
    words_p2 = triton.next_power_of_2(triton.cdiv(trick_limit(dev) // 4, WORD))  # one compile per device type
    scan_kernel[(1,)](mask, valid.to(torch.int8), removed, keep, n, words, WORDS_P2=words_p2, WORD=WORD)
    return keep


def _segments(boxes, keys, valid, threshold) -> Tensor:
    """Per-segment block NMS over boxes grouped by key -> Tensor[n] int8 kept flags."""
    *_, segment_kernel = _get_kernels()
    n, dev = boxes.shape[0], boxes.device
    boxes = boxes.contiguous()
    keep = torch.zeros(n, dtype=torch.int8, device=dev)
    removed = torch.zeros(n, dtype=torch.int8, device=dev)
    segment_kernel[(n,)](boxes, _areas(boxes), keys.contiguous(), valid.to(torch.int8), threshold, removed, keep, n,
                         BLOCK=SEGMENT_BLOCK, num_warps=NUM_WARPS, **launch_options())
    return keep


def _get_kernels():
    """The jitted kernels; importing them imports triton (done on first use only). triton_modules()
    first: under the interpreter it makes triton's standard library (tl.sum, ...) interpretable."""
    triton_modules()
    from . import _kernels

    return _kernels.iou_mask_kernel, _kernels.greedy_scan_kernel, _kernels.segment_nms_kernel
