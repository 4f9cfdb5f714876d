"""Triton kernels of the nms op (imported lazily by nms/triton.py; see there for the algorithm)."""

import triton
import triton.language as tl


@triton.jit
def iou_mask_kernel(boxes_ptr, areas_ptr, classes_ptr, mask_ptr, n, words, threshold_ptr,
                    CHECK_CLASS: tl.constexpr, BLOCK_ROWS: tl.constexpr, WORD: tl.constexpr):
    """mask[i, word] bit b = box (word * WORD + b) after i, same class, IoU > threshold.

    The IoU is computed in the boxes' dtype (float32 or float64); the threshold is read from
    threshold_ptr (one element of that dtype: a scalar argument would be passed as float32)."""
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    cols = tl.program_id(1) * WORD + tl.arange(0, WORD)
    rmask, cmask = rows < n, cols < n
    rx1 = tl.load(boxes_ptr + rows * 4 + 0, mask=rmask, other=0.0)[:, None]
    ry1 = tl.load(boxes_ptr + rows * 4 + 1, mask=rmask, other=0.0)[:, None]
    rx2 = tl.load(boxes_ptr + rows * 4 + 2, mask=rmask, other=0.0)[:, None]
    ry2 = tl.load(boxes_ptr + rows * 4 + 3, mask=rmask, other=0.0)[:, None]
    cx1 = tl.load(boxes_ptr + cols * 4 + 0, mask=cmask, other=0.0)[None, :]
    cy1 = tl.load(boxes_ptr + cols * 4 + 1, mask=cmask, other=0.0)[None, :]
    cx2 = tl.load(boxes_ptr + cols * 4 + 2, mask=cmask, other=0.0)[None, :]
    cy2 = tl.load(boxes_ptr + cols * 4 + 3, mask=cmask, other=0.0)[None, :]
    rarea = tl.load(areas_ptr + rows, mask=rmask, other=1.0)[:, None]
    carea = tl.load(areas_ptr + cols, mask=cmask, other=1.0)[None, :]
    w = tl.maximum(tl.minimum(rx2, cx2) - tl.maximum(rx1, cx1), 0.0)
    h = tl.maximum(tl.minimum(ry2, cy2) - tl.maximum(ry1, cy1), 0.0)
    inter = w * h
    iou = tl.math.fdiv(inter, (rarea + carea) - inter, ieee_rounding=True)  # div.rn, float32 or float64
    hit = (iou > tl.load(threshold_ptr)) & (cols[None, :] > rows[:, None]) & cmask[None, :] & rmask[:, None]
    if CHECK_CLASS:
        rcls = tl.load(classes_ptr + rows, mask=rmask, other=-1)[:, None]
        ccls = tl.load(classes_ptr + cols, mask=cmask, other=-2)[None, :]
        hit = hit & (rcls == ccls)
    shift = tl.arange(0, WORD).to(tl.int64)
    bits = tl.where(hit, tl.full([BLOCK_ROWS, WORD], 1, tl.int64) << shift[None, :], 0)
    word = tl.sum(bits, 1)  # distinct bits: the sum is their OR (bit 63 wraps, no carries)
    tl.store(mask_ptr + rows.to(tl.int64) * words + tl.program_id(1), word, mask=rmask)

@triton.jit
def greedy_scan_kernel(mask_ptr, removed_ptr, keep_ptr, n, words, WORDS_P2: tl.constexpr, WORD: tl.constexpr):
    """One program walks the boxes in order: box i is kept unless its bit in `removed` is set;
    a kept box ORs its mask row into `removed` (a zeroed scratch Tensor[words] int64, mirrored
    in registers; the scalar read goes through memory, hence the barrier)."""
    idx = tl.arange(0, WORDS_P2)
    in_range = idx < words
    removed = tl.zeros([WORDS_P2], dtype=tl.int64)
    for i in range(n):
        word = tl.load(removed_ptr + i // WORD)
        alive = ((word >> (i % WORD)) & 1) == 0
        row = tl.load(mask_ptr + i * words + idx, mask=in_range & alive, other=0)
        removed = removed | row
        tl.store(removed_ptr + idx, removed, mask=in_range)
        tl.debug_barrier()
        tl.store(keep_ptr + i, alive.to(tl.int8))
