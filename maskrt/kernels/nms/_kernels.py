"""Triton kernels of the nms op (imported lazily by nms/triton.py; see there for the algorithm), and
`batched_nms_kernel`, the whole batched NMS in one program (the BatchedNMS AOT plugin's kernel).

Per-frame sizes (n, words) are not specialized (do_not_specialize): a new box count is not a new
compile. The threshold and the class-check switch are read from device tensors.
"""

import triton
import triton.language as tl

from .._ieee import ieee_div

INT64_MAX = tl.constexpr(9223372036854775807)


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
    return ieee_div(inter, (rarea + carea) - inter)


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


# --- batched NMS in one program: the BatchedNMS plugin's ahead-of-time kernel -------------------

@triton.jit
def _finite(x):
    return tl.abs(x) < float("inf")  # NaN compares false


@triton.jit
def _sort_key(score, idx, valid):
    """int64 key, unique per row, ascending = score descending, ties by lower row, invalid rows last:
    ((~orderable32(score) - 2^31) << 32) | row, with -0.0 as +0.0 (torch compares them equal)."""
    bits = (score + 0.0).to(tl.int32, bitcast=True)
    ascending = tl.where(bits < 0, ~bits, bits | -2147483648)  # the floats' order as uint32
    descending = tl.where(valid, (~ascending).to(tl.int64) & 0xFFFFFFFF, 0xFFFFFFFF)
    return ((descending - 2147483648) << 32) | idx.to(tl.int64)


@triton.jit
def _rows(boxes_ptr, scores_ptr, i, m):
    """(x1, y1, x2, y2, valid) of rows i as float32; valid: finite box and a score that is not NaN."""
    b = boxes_ptr + i.to(tl.int64) * 4
    x1 = tl.load(b + 0, mask=m, other=0.0).to(tl.float32)
    y1 = tl.load(b + 1, mask=m, other=0.0).to(tl.float32)
    x2 = tl.load(b + 2, mask=m, other=0.0).to(tl.float32)
    y2 = tl.load(b + 3, mask=m, other=0.0).to(tl.float32)
    s = tl.load(scores_ptr + i, mask=m, other=0.0).to(tl.float32)
    valid = m & _finite(x1) & _finite(y1) & _finite(x2) & _finite(y2) & (s == s)
    return x1, y1, x2, y2, s, valid


@triton.jit
def _candidates(boxes_ptr, classes_ptr, idx, m, trick, shift):
    """(x1, y1, x2, y2, area, class) of rows idx, offset by class * shift when trick (torch's ops:
    idxs.to(boxes) * (max + 1), then boxes + offsets), areas as torchvision computes them."""
    b = boxes_ptr + idx.to(tl.int64) * 4
    cls = tl.load(classes_ptr + idx, mask=m, other=-1)
    off = tl.where(trick, cls.to(tl.float32) * shift, 0.0)
    x1 = tl.load(b + 0, mask=m, other=0.0).to(tl.float32) + off
    y1 = tl.load(b + 1, mask=m, other=0.0).to(tl.float32) + off
    x2 = tl.load(b + 2, mask=m, other=0.0).to(tl.float32) + off
    y2 = tl.load(b + 3, mask=m, other=0.0).to(tl.float32) + off
    return x1, y1, x2, y2, (x2 - x1) * (y2 - y1), cls


@triton.jit
def _suppresses(ax1, ay1, ax2, ay2, aarea, acls, bx1, by1, bx2, by2, barea, bcls, trick, threshold):
    """[len(a), len(b)]: IoU(a_i, b_j) > threshold with torchvision's CPU formula (a the earlier box),
    and the same class unless trick."""
    w = tl.maximum(tl.minimum(ax2[:, None], bx2[None, :]) - tl.maximum(ax1[:, None], bx1[None, :]), 0.0)
    h = tl.maximum(tl.minimum(ay2[:, None], by2[None, :]) - tl.maximum(ay1[:, None], by1[None, :]), 0.0)
    inter = w * h
    iou = ieee_div(inter, (aarea[:, None] + barea[None, :]) - inter)
    return (iou > threshold) & ((acls[:, None] == bcls[None, :]) | trick)


@triton.jit
def batched_nms_kernel(boxes_ptr, scores_ptr, classes_ptr, n, max_out, threshold_bits, keep_ptr, count_ptr, work_ptr,
                       CHUNK: tl.constexpr, B: tl.constexpr, KC: tl.constexpr, TRICK_LIMIT: tl.constexpr):
    """Batched NMS in ONE program (launch grid (1,)): the kept rows into keep[0:count], *count_ptr = count.

    boxes: [n, 4] float32/float16 xyxy; scores: [n] of their type; classes: [n] int64; max_out: at
    most this many kept (min(n, max_output)); threshold_bits: common.float32_threshold's bits as
    int32; keep: [max_out] int64 (rows by decreasing score, ties by lower row); count: [] int32;
    work: [n + cdiv(n, CHUNK) * CHUNK] int64 scratch (an AOT plugin gets no workspace). Arguments in
    TensorRT's AOT order (inputs, int32 scalars, outputs).
    Kept set = nms.reference (torchvision's batched_nms): rows with a non-finite box or a NaN score
    are never kept; the coordinate trick (boxes + class * (max + 1), no class check) applies when
    4 * valid rows <= TRICK_LIMIT and no valid coordinate is negative, else the class check (one
    greedy walk in global score order keeps exactly the per-class NMS sets).
    Phases, separated by barriers (global writes are then visible in the program):
    1. over n: valid rows, the largest and any negative coordinate -> trick, shift;
    2. sort keys (_sort_key) chunk by chunk (tl.sort) into work;
    3. more than one chunk: merge by co-ranking (final place = own rank + lower bound in every
       other chunk) into work[cdiv(n, CHUNK) * CHUNK:];
    4. greedy walk, B candidates at a time: suppressed by a kept box (read back from keep, KC at a
       time), then resolved inside the block (B x B IoUs, B steps); the kept ones appended to keep
       in order; stops when max_out are kept or the valid rows are exhausted.
    """
    threshold = threshold_bits.to(tl.float32, bitcast=True)
    r = tl.arange(0, CHUNK)
    n_valid = 0
    largest = -float("inf")
    negative = 0
    for c0 in range(0, n, CHUNK):
        x1, y1, x2, y2, s, valid = _rows(boxes_ptr, scores_ptr, c0 + r, (c0 + r) < n)
        n_valid += tl.sum(valid.to(tl.int32))
        largest = tl.maximum(largest, tl.max(tl.where(valid, tl.maximum(tl.maximum(x1, y1), tl.maximum(x2, y2)),
                                                      -float("inf"))))
        negative += tl.sum((valid & (tl.minimum(tl.minimum(x1, y1), tl.minimum(x2, y2)) < 0.0)).to(tl.int32))
    trick = (n_valid * 4 <= TRICK_LIMIT) & (negative == 0)
    shift = largest + 1.0
    for c0 in range(0, n, CHUNK):
        i = c0 + r
        x1, y1, x2, y2, s, valid = _rows(boxes_ptr, scores_ptr, i, i < n)
        tl.store(work_ptr + i, tl.sort(tl.where(i < n, _sort_key(s, i, valid), INT64_MAX)))
    tl.debug_barrier()
    base = 0
    if n > CHUNK:
        base = tl.cdiv(n, CHUNK) * CHUNK
        for c0 in range(0, n, CHUNK):
            x = tl.load(work_ptr + c0 + r)
            final = r
            for d0 in range(0, n, CHUNK):
                if d0 != c0:
                    lo = tl.zeros([CHUNK], dtype=tl.int32)
                    hi = tl.zeros([CHUNK], dtype=tl.int32) + CHUNK
                    for _ in range(CHUNK.bit_length()):  # lower bound: the first key >= x
                        mid = (lo + hi) // 2
                        v = tl.load(work_ptr + d0 + tl.minimum(mid, CHUNK - 1))
                        right = (v < x) & (lo < hi)
                        lo = tl.where(right, mid + 1, lo)
                        hi = tl.where(right | (lo >= hi), hi, mid)
                    final += lo
            tl.store(work_ptr + base + final, x, mask=(c0 + r) < n)
        tl.debug_barrier()
    jb = tl.arange(0, B)
    jk = tl.arange(0, KC)
    k = 0
    p = 0
    while (p < n_valid) & (k < max_out):
        inb = (p + jb) < n_valid
        idx = tl.where(inb, (tl.load(work_ptr + base + p + jb, mask=inb, other=0) & 0xFFFFFFFF).to(tl.int32), 0)
        cx1, cy1, cx2, cy2, carea, ccls = _candidates(boxes_ptr, classes_ptr, idx, inb, trick, shift)
        removed = ~inb
        for k0 in range(0, k, KC):
            km = (k0 + jk) < k
            kidx = tl.load(keep_ptr + k0 + jk, mask=km, other=0).to(tl.int32)
            kx1, ky1, kx2, ky2, karea, kcls = _candidates(boxes_ptr, classes_ptr, kidx, km, trick, shift)
            hit = _suppresses(kx1, ky1, kx2, ky2, karea, kcls, cx1, cy1, cx2, cy2, carea, ccls, trick, threshold)
            removed = removed | (tl.max((hit & km[:, None]).to(tl.int32), 0) != 0)
        hit = _suppresses(cx1, cy1, cx2, cy2, carea, ccls, cx1, cy1, cx2, cy2, carea, ccls, trick, threshold)
        hit = (hit & (jb[None, :] > jb[:, None])).to(tl.int32)
        for t in range(B):  # candidate t, if still alive, removes the later ones it overlaps
            alive = tl.sum(tl.where((jb == t) & ~removed, 1, 0)) != 0
            removed = removed | ((tl.sum(tl.where(jb[:, None] == t, hit, 0), 0) != 0) & alive)
        kept = inb & ~removed
        slot = k + tl.cumsum(kept.to(tl.int32), 0) - 1
        tl.store(keep_ptr + slot, idx.to(tl.int64), mask=kept & (slot < max_out))
        k = tl.minimum(k + tl.sum(kept.to(tl.int32)), max_out)
        p += B
        tl.debug_barrier()  # the next block reads keep
    tl.store(count_ptr, k)
