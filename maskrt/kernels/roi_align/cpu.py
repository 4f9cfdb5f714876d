"""Fast CPU multi-level RoIAlign: every bin of every RoI as one weighted gather, per channel block.

Every output bin is a weighted sum of `4 * gh * gw` bilinear taps (gh x gw sampling points, 4
taps each), which read fewer distinct pixels when samples share a cell (the bundled model's 300 box
RoIs: 128k pixels for 235k taps). Each RoI's FPN level and geometry (one numba pass over the RoIs,
which also checks their values), then every bin's bag, each pixel it reads once with its taps'
weights summed (table row = level base + row * width + column; one numba pass: per axis, the
taps merged, then their outer product), are computed once for all RoIs in float32 with
torchvision's arithmetic. Then, per block of 64 channels, all levels are copied channels-last into a table
Tensor[sum_l B * H_l * W_l, 64] (only the rows the taps read when they are few: R50's 1000 box RoIs
at 800x1344 read 20% of them; a FeaturePyramid's later RoIAlign copies the rows it adds) and
embedding_bag (mode "sum", per-sample weights) gathers and sums the taps of all bins, in RoI order,
copied into that block's columns of the channels-last output (one strided copy; torch's out
variant of embedding_bag would copy too). The result is
returned as a channels_last Tensor[R, C, S, S], so the output is never transposed. The channel
blocks are independent: they run on the glue's threads (maskrt.kernels.glue_threads; R50's box
RoIAlign at 800x1344 on 2 cores: 51 -> 34 ms; the tables of the rows read: 34 -> ~21 ms). Both
steps are memory-bound (R50's whole tables are 91 MB): one thread of a core saturates its share of
the bandwidth.

RoIs whose adaptive grid is large (gh * gw > MAX_GATHER_SAMPLES, e.g. huge boxes) use an exact
separable path instead: out = Wy @ F @ Wx^T with per-axis weights accumulated over samples, so
memory stays bounded by the feature map, not by the number of samples.

Numerics: as torchvision's CPU roi_align; differences are rounding only (~1e-6 relative in
float32). Computed in float32 for float32/float16/bfloat16 features (fp16/bf16 rounded once at
the end) and in float64 for float64 features (torchvision's double kernel), whatever the autocast
state (autocast would run the separable path's einsum in bfloat16).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .. import glue_threads
from .._numba import compiled_on_first_use
from .common import check_shapes, level_thresholds, raise_rois_problem
from .reference import LEVEL_MAPPERS, level_range

MAX_GATHER_SAMPLES = 36  # gh * gw per bin above which the separable path is used
CHANNEL_BLOCK = 64  # channels per gather and per glue task (R50: 4 blocks, 23 MB tables at 800x1344)
THREADED_WORK = 1 << 22  # table elements + tap products below which the blocks stay on the calling thread (~1 ms)
# taps x this below table elements: only the rows the taps read are copied (R50's 1000 box RoIs at 800x1344
# read 20% of the 89250 rows; the bundled model's 300 at 320x320 read 80% of 8500: whole table)
SPARSE_TABLE_TAPS = 8
_CHUNK_BINS = 1 << 16  # samples per chunk when accumulating the separable path's axis weights


def roi_align(
    features: Sequence[Tensor],
    rois: Tensor,
    spatial_scales: Sequence[float],
    output_size: int,
    sampling_ratio: int = 2,
    aligned: bool = False,
    canonical_size: int = 224,
    canonical_level: int = 4,
    level_mapper: str = "torchvision",
    out: Tensor | None = None,
) -> Tensor:
    """Multi-level RoIAlign, same contract as `maskrt.kernels.roi_align.reference.roi_align`.

    features: L x Tensor[B, C, H_l, W_l]; rois: Tensor[R, 5] (batch_index, x1, y1, x2, y2) in
    input-image pixels. Returns Tensor[R, C, output_size, output_size] in the features' dtype, in
    channels_last memory format (the values are the same; call .contiguous() for NCHW strides).
    out: optional Tensor[R, C, S, S] of that dtype to write into and return (a channels_last one
    is written in place, without a fresh allocation: the caller's reused buffer, e.g. a compiled
    stage's input; any other layout gets the result copied in).
    Raises ValueError for non-finite RoIs or batch indices out of range.
    """
    check_shapes(features, rois, spatial_scales, output_size)  # the rois' values: in _geometry
    with torch.autocast("cpu", enabled=False):  # compute in the features' precision, never bf16
        return _roi_align(features, rois, spatial_scales, output_size, sampling_ratio, aligned, canonical_size,
                          canonical_level, level_mapper, out)


def _roi_align(features, rois, spatial_scales, output_size, sampling_ratio, aligned, canonical_size,
               canonical_level, level_mapper, out=None) -> Tensor:
    """`roi_align` on checked inputs (see there)."""
    first = features[0]
    n, c, size = rois.shape[0], first.shape[1], output_size
    if out is not None and tuple(out.shape) != (n, c, size, size):
        raise ValueError(f"roi_align out must be Tensor[{n}, {c}, {size}, {size}], got {tuple(out.shape)}")
    if n == 0:
        return first.new_zeros((0, size, size, c)).permute(0, 3, 1, 2) if out is None else out
    geo = _geometry(rois, features, spatial_scales, size, sampling_ratio, aligned, canonical_size, canonical_level,
                    level_mapper)
    pos, weight, offsets = _bags(geo, size)  # computed once, reused for every channel block
    dtype = compute_dtype(first.dtype)
    in_place = out is not None and out.dtype == dtype and _channels_last_rows(out)
    # [R, S, S, C]: bins in RoI order, channels last (numpy's allocation: advised huge pages when large)
    rows = out.permute(0, 2, 3, 1).view(n, size, size, c) if in_place else \
        torch.from_numpy(np.empty((n, size, size, c), np.float64 if dtype == torch.float64 else np.float32))
    flat = rows.view(n * size * size, c)
    maps = [f.detach().to(dtype).numpy() for f in features]
    _gather_blocks(maps, getattr(features, "tables", None), getattr(features, "memory", None), pos, offsets, weight,
                   flat)
    large = torch.where(geo["grid_h"] * geo["grid_w"] > MAX_GATHER_SAMPLES)[0].tolist()
    for i in large:
        rows[i] = _separable(features, {k: v[i : i + 1] for k, v in geo.items()}, size)
    # [R, S, S, C] -> Tensor[R, C, S, S] in channels_last memory format: no transpose of the output.
    result = rows.permute(0, 3, 1, 2)
    if in_place:
        return out
    if out is None:
        return result.to(first.dtype)
    return out.copy_(result)


def _gather_blocks(maps: list[np.ndarray], kept: dict | None, memory: TableMemory | None, pos: Tensor,
                   offsets: Tensor, weight: Tensor, flat: Tensor) -> None:
    """flat[:, c0:c1] = every bin's weighted taps from the channel block's table, per block of
    CHANNEL_BLOCK channels, on the glue's threads: one task per block (its table, then its gather);
    with fewer blocks than threads (the bundled model's 64 channels) the tables are made first and
    each block's bins are split into RoI ranges, one gather per range. kept: a FeaturePyramid's
    tables, reused and filled; memory: its TableMemory, where new tables take their memory. flat:
    Tensor[bins, C], bins in RoI order (offsets: Tensor[bins])."""
    c, bins = flat.shape[1], offsets.shape[0]
    dtype = torch.float64 if maps[0].dtype == np.float64 else torch.float32

    rows = table_rows(maps)
    # the rows this call's taps read, when few: only they are copied (the others are never touched)
    needed = _rows_read(pos, rows) if pos.numel() * SPARSE_TABLE_TAPS < rows * c else None

    def table_of(c0: int) -> Tensor:
        key = (c0, min(c0 + CHANNEL_BLOCK, c), dtype)
        table = None if kept is None else kept.get(key)
        if table is None:
            table = PyramidTable(*key[:2], memory)
            if kept is not None:
                kept[key] = table
        return table.with_rows(maps, needed)

    def gather(table: Tensor, c0: int, b0: int, b1: int) -> None:
        t0 = int(offsets[b0])  # b0 < b1 <= bins
        t1 = int(offsets[b1]) if b1 < bins else pos.shape[0]
        starts = offsets[b0:b1] - t0 if b0 else offsets[:b1]
        _gather_sum(table, pos[t0:t1], starts, weight[t0:t1], flat[b0:b1, c0:c0 + table.shape[1]])

    blocks = list(range(0, c, CHANNEL_BLOCK))
    work = (rows + pos.numel()) * CHANNEL_BLOCK  # per block: table rows + taps, x its channels
    parts = glue_threads.available() // len(blocks)
    if parts < 2 or work * len(blocks) < THREADED_WORK:
        glue_threads.map_balanced(lambda c0: gather(table_of(c0), c0, 0, bins), blocks, [work] * len(blocks),
                                  min_cost=THREADED_WORK)
        return
    tables = {c0: table_of(c0) for c0 in blocks}
    edges = [bins * k // parts for k in range(parts + 1)]
    tasks = [(c0, b0, b1) for c0 in blocks for b0, b1 in zip(edges, edges[1:]) if b1 > b0]
    glue_threads.map_balanced(lambda task: gather(tables[task[0]], *task), tasks)


def _gather_sum(table: Tensor, pos: Tensor, offsets: Tensor, weight: Tensor, dst: Tensor) -> None:
    """dst[b] = sum of weight[t] * table[pos[t]] over the taps t of bag b (offsets: each bag's first
    tap). dst: Tensor[bags, cb], rows may be strided (a column block of the channels-last output).

    embedding_bag sums the bags into a fresh contiguous Tensor[bags, cb], copied into dst by numpy
    (one thread). torch has no kernel writing a strided output: its out variant is the same
    computation followed by copies (of the bags and of the bag indices), ~0.6 ms more a 64-channel
    block of R50's box RoIAlign."""
    got = torch.ops.aten._embedding_bag_forward_only(table, pos, offsets, False, 0, False, weight, False, -1)[0]
    np.copyto(dst.numpy(), got.numpy())


def _channels_last_rows(out: Tensor) -> bool:
    """Whether Tensor[R, C, S, S] `out` is a dense channels_last block ([R, S, S, C] contiguous)."""
    return out.device.type == "cpu" and out.permute(0, 2, 3, 1).is_contiguous()


class FeaturePyramid(list):
    """FPN levels, a list of Tensor[B, C, H_l, W_l] as every roi_align takes, that also keeps the
    channels-last tables the cpu kernel builds from them (`tables`: (c0, c1, dtype) -> PyramidTable),
    so the second RoIAlign over the same levels (the mask head's after the box head's) reuses them
    instead of transposing the pyramid again (R50 at 800x1344: ~21 ms). Valid while the levels'
    values are unchanged: make one per forward pass. memory: a TableMemory the tables are written
    into (kept from one pyramid to the next). Other implementations see a list."""

    def __init__(self, levels, memory: TableMemory | None = None):
        super().__init__(levels)
        self.tables: dict[tuple[int, int, torch.dtype], PyramidTable] = {}
        self.memory = memory


class TableMemory:
    """The memory of the tables of one FeaturePyramid at a time, kept for the next one (a detector's
    next frame): a fresh table is a fresh mapping whose pages fault in, and are zeroed, as its rows
    are written (R50 at 800x1344: four 23 MB tables a frame; its int8 engine's box and mask RoIAligns,
    10 calls each alternating, medians 26.7 and 7.9 ms with the memory kept against 44.8 and 13.7 ms
    without, and 22-33 against 26-144 ms call to call: FRAME-TIME.md 6l).

    One buffer per channel block (c0, c1, dtype), as large as the largest pyramid seen; a smaller one
    takes its leading rows. Rows a call does not read keep an earlier frame's values, never read (as
    a fresh table's unwritten rows). The owner (RoIHeads: one forward pass at a time) must not use
    two pyramids with one TableMemory at once."""

    def __init__(self):
        self._buffers: dict[tuple[int, int, np.dtype], np.ndarray] = {}

    def take(self, c0: int, c1: int, rows: int, dtype: np.dtype) -> np.ndarray:
        """np.ndarray[rows, c1 - c0] of `dtype`, unwritten or holding an earlier table's values."""
        key = (c0, c1, np.dtype(dtype))
        buffer = self._buffers.get(key)
        if buffer is None or buffer.shape[0] < rows:
            buffer = self._buffers[key] = _uninitialised((rows, c1 - c0), dtype)
        return buffer[:rows]


class PyramidTable:
    """Channels c0:c1 of all levels, channels-last (`copy_pyramid_table`'s layout), filled as the RoIAligns
    need: all rows, or only the rows their taps read (`filled`: bool[rows], None once all are).

    The rows a call reads are copied when first needed; rows no call reads are never written (nor
    their pages touched). Its memory comes from `memory` when given (a TableMemory), else fresh.
    Not shared between threads: each channel block's table is one task's."""

    def __init__(self, c0: int, c1: int, memory: TableMemory | None = None):
        self.c0, self.c1 = c0, c1
        self.memory = memory
        self.table: Tensor | None = None
        self.filled: np.ndarray | None = None

    def with_rows(self, maps: Sequence[np.ndarray], needed: np.ndarray | None) -> Tensor:
        """Tensor[rows, c1 - c0] with every row of `needed` (bool[rows]; None: all rows) filled."""
        if self.table is None:
            rows, dtype = table_rows(maps), maps[0].dtype
            memory = self.memory.take(self.c0, self.c1, rows, dtype) if self.memory is not None else \
                _uninitialised((rows, self.c1 - self.c0), dtype)
            self.table = torch.from_numpy(memory)
            if needed is None:
                copy_pyramid_table(maps, self.c0, self.c1, memory)
            else:
                self.filled = needed.copy()
                copy_table_rows(maps, self.c0, self.c1, needed, memory)
        elif self.filled is not None:
            missing = ~self.filled if needed is None else needed & ~self.filled
            if missing.any():
                copy_table_rows(maps, self.c0, self.c1, missing, self.table.numpy())
            self.filled = None if needed is None else self.filled | missing
        return self.table


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64 features (torchvision's double kernel), float32 for all others."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def level_bases(features: Sequence[Tensor]) -> list[int]:
    """First table row of each level: levels are stacked, each B * H_l * W_l rows (image-major)."""
    sizes = [f.shape[0] * f.shape[2] * f.shape[3] for f in features]
    return [sum(sizes[:i]) for i in range(len(sizes))]


def table_rows(levels: Sequence) -> int:
    """Rows of a pyramid table: sum_l B * H_l * W_l over levels [B, C, H_l, W_l] (arrays or tensors)."""
    return sum(f.shape[0] * f.shape[2] * f.shape[3] for f in levels)


def copy_pyramid_table(maps: Sequence[np.ndarray], c0: int, c1: int, table: np.ndarray) -> None:
    """table[:] = channels c0:c1 of all levels, channels-last: table is [sum_l B * H_l * W_l, c1 - c0]
    in the maps' dtype (the whole table; `copy_table_rows` copies some of its rows).

    A numpy copy: many mid-sized torch copies would each wake torch's thread pool, which costs
    milliseconds per op when the other core is busy.
    """
    start = 0
    for f in maps:
        for i in range(f.shape[0]):
            hw = f.shape[2] * f.shape[3]
            table[start : start + hw] = f[i, c0:c1].reshape(c1 - c0, hw).T
            start += hw


def _uninitialised(shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """A table's memory, not written: pages only faulted in where rows are copied."""
    return np.empty(shape, dtype)


def copy_table_rows(maps: Sequence[np.ndarray], c0: int, c1: int, rows: np.ndarray, table: np.ndarray) -> None:
    """table[r] = channels c0:c1 of pyramid row r, for every r with rows[r] (bool[table rows]): the
    rows of `copy_pyramid_table`, copied one compiled pass per level and image."""
    start = 0
    for f in maps:
        hw = f.shape[2] * f.shape[3]
        for i in range(f.shape[0]):
            plane = np.ascontiguousarray(f[i]).reshape(f.shape[1], hw)
            _copy_rows_kernel()(plane, c0, c1, rows[start : start + hw], table, start)
            start += hw


def _rows_read(pos: Tensor, rows: int) -> np.ndarray:
    """bool[rows]: True for every table row some tap in `pos` (Tensor[T] of row indices) reads."""
    read = np.zeros(rows, np.bool_)
    _mark_kernel()(pos.numpy().reshape(-1), read)
    return read


def _mark_rows(pos, read):  # pragma: no cover - compiled by numba
    """read[pos[t]] = True for every t."""
    for t in range(pos.shape[0]):
        read[pos[t]] = True


def _copy_marked_rows(plane, c0, c1, rows, table, start):  # pragma: no cover - compiled by numba
    """table[start + p, c - c0] = plane[c, p] for c in [c0, c1) and every p with rows[p] (plane: [C, H * W])."""
    for p in range(plane.shape[1]):
        if rows[p]:
            for c in range(c0, c1):
                table[start + p, c - c0] = plane[c, p]


_mark_kernel = compiled_on_first_use(_mark_rows)
_copy_rows_kernel = compiled_on_first_use(_copy_marked_rows)


def _bags(geo: dict[str, Tensor], size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Table rows, weights and bag offsets of every output bin, bins in (RoI, row, column) order:
    (pos Tensor[T] int64, weight Tensor[T] in the geometry's float dtype, offsets Tensor[R * S * S]
    int64, each bin's first tap).

    A bin's bag holds each pyramid pixel its samples read once (`_merged_bags`): the outer product of
    the bin's row taps and column taps, each axis with its equal positions merged (weights summed).
    RoIs without samples (no level) and those the separable path pools (gh * gw >
    MAX_GATHER_SAMPLES) get empty bags (embedding_bag sums them to 0; the latter are filled afterwards).
    """
    n = geo["start_h"].shape[0]
    grid_h, grid_w = geo["grid_h"].numpy(), geo["grid_w"].numpy()
    samples = grid_h * grid_w
    gathered = (samples > 0) & (samples <= MAX_GATHER_SAMPLES)
    bound = 4 * size * size * int(samples[gathered].sum())  # the taps before merging
    widest = max(int(grid_h[gathered].max(initial=0)), int(grid_w[gathered].max(initial=0)), 1)
    dtype = geo["start_h"].numpy().dtype
    pos, weight, offsets = np.empty(bound, np.int64), np.empty(bound, dtype), np.empty(n * size * size, np.int64)
    # constants in the features' dtype: numba would widen float32 arithmetic with a float64 literal
    consts = np.array([0.0, 1.0, -1.0, 0.5], dtype)
    args = [geo[k].numpy() for k in ("start_h", "start_w", "bin_h", "bin_w", "height", "width", "base")]
    limits = [geo[k].numpy().astype(dtype) for k in ("height", "width")]
    scratch = (np.empty((size, 2 * widest), np.int64), np.empty((size, 2 * widest), dtype),
               np.empty((size, 2 * widest), np.int64), np.empty((size, 2 * widest), dtype), np.empty(size, np.int64),
               np.empty(size, np.int64), np.empty(1, dtype))
    used = _bags_kernel()(*args, *limits, grid_h, grid_w, MAX_GATHER_SAMPLES, consts, *scratch, pos, weight, offsets)
    return torch.from_numpy(pos[:used]), torch.from_numpy(weight[:used]), torch.from_numpy(offsets)


def _merged_bags(start_h, start_w, bin_h, bin_w, height, width, base, height_f, width_f, grid_h, grid_w,
                 max_samples, consts, rows, wy, cols, wx, row_count, col_count, cast, pos,
                 weight, offsets):  # pragma: no cover - compiled by numba
    """_bags' taps: fills pos, weight (the first `used` entries) and offsets (every bin's first tap);
    returns used.

    Per RoI and axis, `axis_taps`' arithmetic in the dtype of the inputs (consts: 0, 1, -1, 0.5):
    sample k of bin p at start + p * bin + (k + 0.5) * bin / grid, taps (low, high) with weights
    ((1 - frac) * share, frac * share), share 0 where the sample is outside [-1, limit] (a row sample's
    share also carries 1 / (gh * gw), the bin's mean). An axis's taps are merged in sample order: a
    position met before gets the tap's weight added, so every pixel a bin reads appears once in its
    bag (zero-weight taps stay: a NaN read still propagates). A sample's low position is monotone in
    the sample (its high one is low + 1, or low at the edge), so a position met before is among the
    last three merged (the previous sample's low and high, or, with a negative bin, the one before):
    only those are searched. Then each bin's bag is the outer product, rows outer: pos = base + row * width +
    column, weight = wy * wx. rows, wy: [S, 2 * g] scratch (row_count: merged taps per bin), cols,
    wx likewise; cast: one scalar of the dtype (converts the integer grids)."""
    zero, one, minus_one, half = consts[0], consts[1], consts[2], consts[3]
    size = rows.shape[0]
    used = 0
    for i in range(start_h.shape[0]):
        gh, gw = grid_h[i], grid_w[i]
        first_bin = i * size * size
        if gh * gw == 0 or gh * gw > max_samples:  # no samples, or the separable path's: empty bags
            for b in range(size * size):
                offsets[first_bin + b] = used
            continue
        cast[0] = gh * gw
        mean_share = one / cast[0]
        for axis in range(2):
            if axis == 0:
                start, bin_size, grid, limit, limit_f, share, index, taps, count = \
                    start_h[i], bin_h[i], gh, height[i], height_f[i], mean_share, rows, wy, row_count
            else:
                start, bin_size, grid, limit, limit_f, share, index, taps, count = \
                    start_w[i], bin_w[i], gw, width[i], width_f[i], one, cols, wx, col_count
            cast[0] = grid
            grid_f = cast[0]
            for p in range(size):
                cast[0] = p
                first = start + cast[0] * bin_size
                m = 0
                for k in range(grid):
                    cast[0] = k
                    coord = first + (cast[0] + half) * bin_size / grid_f
                    scale = share if coord >= minus_one and coord <= limit_f else zero
                    if coord < zero:
                        coord = zero
                    low = np.int64(coord)
                    if low >= limit - 1:
                        low, high, w_low, w_high = limit - 1, limit - 1, one * scale, zero * scale
                    else:
                        frac = coord - np.floor(coord)  # coord >= 0: coord - float(low), exactly
                        high, w_low, w_high = low + 1, (one - frac) * scale, frac * scale
                    for t in range(2):  # merged: a position met before is among the last three
                        at, w = (low, w_low) if t == 0 else (high, w_high)
                        j = m - 1
                        while j >= 0 and j > m - 4 and index[p, j] != at:
                            j -= 1
                        if j >= 0 and j > m - 4:
                            taps[p, j] += w
                        else:
                            index[p, m], taps[p, m] = at, w
                            m += 1
                count[p] = m
        for p in range(size):
            for q in range(size):
                offsets[first_bin + p * size + q] = used
                for a in range(row_count[p]):
                    row = base[i] + rows[p, a] * width[i]
                    for c in range(col_count[q]):
                        pos[used] = row + cols[q, c]
                        weight[used] = wy[p, a] * wx[q, c]
                        used += 1
    return used


_bags_kernel = compiled_on_first_use(_merged_bags)  # no fastmath: products and sums round as torch's


def _geometry(rois: Tensor, features: Sequence[Tensor], spatial_scales: Sequence[float], size: int,
              sampling_ratio: int, aligned: bool, canonical_size: int, canonical_level: int,
              level_mapper: str) -> dict[str, Tensor]:
    """Every RoI's level, start, bin size, sampling grid and table base, in one numba pass
    (`_roi_geometry`); ValueError for a NaN or inf coordinate or a batch index outside [0, B).

    Levels as reference.fpn_levels assigns them (one level: 0 for all): q = sqrt(area) /
    canonical_size in the rois' precision (float64 for float64 RoIs, else float32, as torchvision's
    box_area upcasts), level = #{j: q >= t_j} with t_j = common.level_thresholds (the smallest q of
    each higher level, found with the reference's own formula), -1 for a negative area (q NaN).
    Geometry with torchvision's arithmetic in float32 (float64 for float64 features), the RoI and
    the scales rounded to the features' dtype first, as the reference does before pooling: start =
    coordinate * scale - offset (0.5 aligned), size clamped at 1 unless aligned, bin = size / S,
    grid = sampling_ratio or ceil(size / S) clamped at 0. RoIs without a level (outside [0, L)) get
    an empty grid: they pool to 0. Returns Tensor[R] each: "level" (clamped into [0, L)), "batch",
    "base" (first table row of the RoI's map), "height", "width", "start_h", "start_w", "bin_h",
    "bin_w", "grid_h", "grid_w"."""
    dtype = features[0].dtype
    q_dtype = torch.float64 if rois.dtype == torch.float64 else torch.float32  # the levels' precision
    checked = np.ascontiguousarray(rois.detach().cpu().to(q_dtype).numpy())
    rounded = np.ascontiguousarray(rois.detach().cpu().to(dtype).to(compute_dtype(dtype)).numpy())
    map_levels = len(features) > 1
    thresholds = np.zeros(0, checked.dtype)
    if map_levels:
        if level_mapper not in LEVEL_MAPPERS:
            raise ValueError(f"unknown level mapper {level_mapper!r}; choose from {', '.join(LEVEL_MAPPERS)}")
        k_min, k_max = level_range(spatial_scales)
        thresholds = np.array(level_thresholds(q_dtype, k_min, k_max, canonical_level,
                                               min(k_max - k_min, len(features)), mapper=level_mapper), checked.dtype)
    scales = torch.tensor([float(s) for s in spatial_scales], dtype=dtype).to(compute_dtype(dtype)).numpy()
    heights = np.array([f.shape[2] for f in features], np.int64)
    widths = np.array([f.shape[3] for f in features], np.int64)
    consts = np.array([1.0, 0.5 if aligned else 0.0, size], rounded.dtype)
    out = {k: np.empty(rounded.shape[0], rounded.dtype if k in FLOAT_GEOMETRY else np.int64) for k in GEOMETRY_KEYS}
    problem = _geometry_kernel()(
        checked, rounded, thresholds, np.array([canonical_size], checked.dtype), scales, heights, widths,
        np.array(level_bases(features), np.int64), consts, sampling_ratio, aligned, features[0].shape[0], map_levels,
        *out.values())
    raise_rois_problem(problem, features[0].shape[0])
    return {k: torch.from_numpy(v) for k, v in out.items()}


# _roi_geometry's outputs, in its argument order; the four geometry values in the compute precision, the rest int64
GEOMETRY_KEYS = ("level", "batch", "base", "height", "width", "start_h", "start_w", "bin_h", "bin_w", "grid_h",
                 "grid_w")
FLOAT_GEOMETRY = ("start_h", "start_w", "bin_h", "bin_w")


def _roi_geometry(checked, rounded, thresholds, canonical, scales, heights, widths, bases, consts, sampling_ratio,
                  aligned, batch_size, map_levels, level, batch, base, height, width, start_h, start_w, bin_h, bin_w,
                  grid_h, grid_w):  # pragma: no cover - compiled by numba
    """_geometry's per-RoI arithmetic (see there). checked: the rois [R, 5] in the levels' precision
    (their values are checked); rounded: the rois in the features' dtype, in the compute precision
    (the geometry's). consts: 1, the offset and S in the compute precision. Returns 0, or 1 for a
    NaN or inf coordinate anywhere (the rows are not computed then), else 2 for a batch index < 0
    or >= batch_size."""
    one, offset, size = consts[0], consts[1], consts[2]
    levels = scales.shape[0]
    non_finite, out_of_range = False, False
    for i in range(checked.shape[0]):
        finite = True
        for k in range(5):
            if not np.isfinite(checked[i, k]):
                finite = False
        if not finite:
            non_finite = True
            continue
        if checked[i, 0] < 0 or np.int64(checked[i, 0]) >= batch_size:
            out_of_range = True
            continue
        lvl = 0
        if map_levels:
            q = np.sqrt((checked[i, 3] - checked[i, 1]) * (checked[i, 4] - checked[i, 2])) / canonical[0]
            if np.isnan(q):
                lvl = -1
            else:
                for t in range(thresholds.shape[0]):
                    if q >= thresholds[t]:
                        lvl += 1
        assigned = 0 <= lvl < levels
        lvl = min(max(lvl, 0), levels - 1)
        scale = scales[lvl]
        x1, y1 = rounded[i, 1] * scale - offset, rounded[i, 2] * scale - offset
        x2, y2 = rounded[i, 3] * scale - offset, rounded[i, 4] * scale - offset
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:
            roi_w, roi_h = max(roi_w, one), max(roi_h, one)
        gh, gw = sampling_ratio, sampling_ratio
        if sampling_ratio <= 0:
            gh, gw = max(np.int64(np.ceil(roi_h / size)), 0), max(np.int64(np.ceil(roi_w / size)), 0)
        b = np.int64(rounded[i, 0])
        level[i], batch[i], height[i], width[i] = lvl, b, heights[lvl], widths[lvl]
        base[i] = bases[lvl] + b * heights[lvl] * widths[lvl]
        start_h[i], start_w[i], bin_h[i], bin_w[i] = y1, x1, roi_h / size, roi_w / size
        grid_h[i], grid_w[i] = (gh, gw) if assigned else (0, 0)
    return 1 if non_finite else 2 if out_of_range else 0


_geometry_kernel = compiled_on_first_use(_roi_geometry)  # no fastmath: rounds as torch's ops


def axis_taps(start: Tensor, bin_size: Tensor, grid: int, size: int, limit: Tensor | int, first: int = 0):
    """Bilinear taps along one axis for samples `first .. first + g` of every bin (g <= _CHUNK_BINS).

    start, bin_size: Tensor[n] float32 or float64; limit: the feature size along the axis (int or Tensor[n]).
    Sample k of bin p sits at start + p * bin + (k + 0.5) * bin / grid (torchvision's order of
    operations). Returns (index Tensor[n, size, g, 2] int64, weight Tensor[n, size, g, 2] in start's dtype,
    valid Tensor[n, size, g] bool); samples outside [-1, limit] are invalid (torchvision drops them).
    """
    n_samples = min(grid - first, _CHUNK_BINS)
    limit = torch.as_tensor(limit).reshape(-1, 1, 1)
    p = torch.arange(size, dtype=start.dtype)
    k = torch.arange(first, first + n_samples, dtype=start.dtype)
    coord = (start[:, None] + p[None, :] * bin_size[:, None])[:, :, None] + \
        ((k + 0.5)[None, :] * bin_size[:, None] / float(grid))[:, None, :]
    valid = (coord >= -1.0) & (coord <= limit)
    coord = coord.clamp(min=0.0)
    low = coord.to(torch.int64)
    at_edge = low >= limit - 1
    low = torch.where(at_edge, limit - 1, low)
    high = torch.where(at_edge, low, low + 1)
    frac = torch.where(at_edge, 0.0, coord - low)
    return torch.stack([low, high], -1), torch.stack([1.0 - frac, frac], -1), valid


def _separable(features: Sequence[Tensor], geo: dict[str, Tensor], size: int) -> Tensor:
    """One RoI with a large sampling grid: Tensor[S, S, C] = Wy @ F @ Wx^T / count.

    Per-axis weights are accumulated over samples in chunks, so memory stays O(S * (H + W)) and
    the cost O(samples + S * H * W * C) whatever the grid size.
    """
    h, w = int(geo["height"][0]), int(geo["width"][0])
    gh, gw = int(geo["grid_h"][0]), int(geo["grid_w"][0])
    wy = _axis_matrix(geo["start_h"], geo["bin_h"], gh, size, h)  # [P, H]
    wx = _axis_matrix(geo["start_w"], geo["bin_w"], gw, size, w)  # [Q, W]
    fmap = features[int(geo["level"][0])][int(geo["batch"][0])].to(wy.dtype)  # [C, H, W]
    tmp = torch.einsum("ph,chw->pwc", wy, fmap)
    return torch.einsum("qw,pwc->pqc", wx, tmp) / float(max(gh * gw, 1))


def _axis_matrix(start: Tensor, bin_size: Tensor, grid: int, size: int, limit: int) -> Tensor:
    """Dense Tensor[size, limit] of summed tap weights along one axis for a single RoI (start's dtype)."""
    mat = torch.zeros((size, limit), dtype=torch.float64)
    for first in range(0, grid, _CHUNK_BINS):
        index, weight, valid = axis_taps(start, bin_size, grid, size, limit, first)
        weight = (weight * valid[..., None]).double()
        mat.scatter_add_(1, index[0].reshape(size, -1), weight[0].reshape(size, -1))
    return mat.to(start.dtype)

