"""Triton kernels of the nms op (imported lazily by nms/triton.py; see there for the algorithm).

Per-frame sizes (n, words) are not specialized (do_not_specialize): a new box count is not a new
compile. The threshold and the class-check switch are read from device tensors.
"""

import triton
import triton.language as tl


@triton.jit
def _ieee_div(a, b):
    """a / b rounded to nearest (float32: div_rn, not triton's default div.full; float64 is IEEE)."""
    if a.dtype == tl.float64:
        return a / b
    else:
        return tl.math.div_rn(a, b)


@triton.jit
def _iou(boxes_ptr, areas_ptr, rows, rmask, cols, cmask):
    """IoU tile [len(rows), len(cols)] with torchvision's CPU formula and operation order."""
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
    return _ieee_div(inter, (rarea + carea) - inter)


@triton.jit(do_not_specialize=["n", "words"])
def iou_mask_kernel(boxes_ptr, areas_ptr, classes_ptr, check_class_ptr, threshold_ptr, mask_ptr, n, words,
                    BLOCK_ROWS: tl.constexpr, WORD: tl.constexpr):
    """mask[i, word] bit b = box (word * WORD + b) after i, same class (when *check_class_ptr),
    IoU > *threshold_ptr."""
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    cols = tl.program_id(1) * WORD + tl.arange(0, WORD)
    rmask, cmask = rows < n, cols < n
    iou = _iou(boxes_ptr, areas_ptr, rows, rmask, cols, cmask)
    hit = (iou > tl.load(threshold_ptr)) & (cols[None, :] > rows[:, None]) & cmask[None, :] & rmask[:, None]
    rcls = tl.load(classes_ptr + rows, mask=rmask, other=-1)[:, None]
    ccls = tl.load(classes_ptr + cols, mask=cmask, other=-2)[None, :]
    hit = hit & ((rcls == ccls) | (tl.load(check_class_ptr) == 0))
    shift = tl.arange(0, WORD).to(tl.int64)
    bits = tl.where(hit, tl.full([BLOCK_ROWS, WORD], 1, tl.int64) << shift[None, :], 0)
    word = tl.sum(bits, 1)  # distinct bits: the sum is their OR (bit 63 wraps, no carries)
    tl.store(mask_ptr + rows.to(tl.int64) * words + tl.program_id(1), word, mask=rmask)


@triton.jit(do_not_specialize=["n", "words"])
def greedy_scan_kernel(mask_ptr, valid_ptr, removed_ptr, keep_ptr, n, words, WORDS_P2: tl.constexpr,
                       WORD: tl.constexpr):
    """One program walks the boxes in order: box i is kept when valid and its bit in `removed` is
    clear; a kept box ORs its mask row into `removed` (a zeroed scratch Tensor[words] int64,
    mirrored in registers; the scalar read goes through memory, hence the barrier).
    WORDS_P2 >= words is fixed per device (the largest count this path takes), not per call."""
    idx = tl.arange(0, WORDS_P2)
    in_range = idx < words
    removed = tl.zeros([WORDS_P2], dtype=tl.int64)
    for i in range(n):
        word = tl.load(removed_ptr + i // WORD)
        alive = (((word >> (i % WORD)) & 1) == 0) & (tl.load(valid_ptr + i) != 0)
        row = tl.load(mask_ptr + i * words + idx, mask=in_range & alive, other=0)
        removed = removed | row
        tl.store(removed_ptr + idx, removed, mask=in_range)
        tl.debug_barrier()
        tl.store(keep_ptr + i, alive.to(tl.int8))


@triton.jit
def _in_segment(keys_ptr, valid_ptr, pos, n, key):
    """Rows `pos` that belong to the segment `key` (valid rows with that key; rows are grouped)."""
    inside = pos < n
    same = tl.load(keys_ptr + pos, mask=inside, other=0) == key
    return inside & same & (tl.load(valid_ptr + pos, mask=inside, other=0) != 0)


@triton.jit(do_not_specialize=["n"])
def segment_nms_kernel(boxes_ptr, areas_ptr, keys_ptr, valid_ptr, threshold_ptr, removed_ptr, keep_ptr, n,
                       BLOCK: tl.constexpr):
    """Greedy NMS of one segment (a class, rows grouped by key, each in processing order) per
    program: program p works when row p starts a segment, the others return at once.

    Block by block: the BLOCK x BLOCK IoUs of the block are resolved in registers, box by box
    (a box is kept unless a kept box before it in the block, or in an earlier block, suppressed
    it); then the block's kept boxes mark the later boxes of the segment they suppress in
    `removed` (a zeroed scratch Tensor[n] int8). Memory O(n), no n x n mask."""
    p = tl.program_id(0)
    key = tl.load(keys_ptr + p)
    first = (p == 0) | (tl.load(keys_ptr + tl.maximum(p - 1, 0)) != key)
    threshold = tl.load(threshold_ptr)
    idx = tl.arange(0, BLOCK)
    r0 = p
    more = first & (tl.load(valid_ptr + p) != 0)
    while more:
        rows = r0 + idx
        r_in = _in_segment(keys_ptr, valid_ptr, rows, n, key)
        hit = (_iou(boxes_ptr, areas_ptr, rows, r_in, rows, r_in) > threshold) & (idx[None, :] > idx[:, None])
        hit = hit.to(tl.int32)
        removed = (tl.load(removed_ptr + rows, mask=r_in, other=1) != 0) | ~r_in
        for t in range(BLOCK):
            alive = tl.sum(tl.where((idx == t) & ~removed, 1, 0)) != 0
            suppressed = tl.sum(tl.where(idx[:, None] == t, hit, 0), 0) != 0
            removed = removed | (suppressed & alive)
        kept = r_in & ~removed
        tl.store(keep_ptr + rows, kept.to(tl.int8), mask=r_in)
        c0 = r0 + BLOCK
        more_cols = _in_segment(keys_ptr, valid_ptr, c0, n, key)
        while more_cols:
            cols = c0 + idx
            c_in = _in_segment(keys_ptr, valid_ptr, cols, n, key)
            hits = (_iou(boxes_ptr, areas_ptr, rows, kept, cols, c_in) > threshold) & kept[:, None] & c_in[None, :]
            sup = tl.max(hits.to(tl.int8), 0)
            old = tl.load(removed_ptr + cols, mask=c_in, other=0)
            tl.store(removed_ptr + cols, old | sup, mask=c_in)
            c0 += BLOCK
            more_cols = _in_segment(keys_ptr, valid_ptr, c0, n, key)
        tl.debug_barrier()  # the next block reads what this one stored
        r0 += BLOCK
        more = _in_segment(keys_ptr, valid_ptr, r0, n, key)
