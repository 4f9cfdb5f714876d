"""Geometry shared by the paste implementations, and the fused variant's result type.

torchvision's paste (the oracle) pads each M x M mask by one pixel (M + 2), scales its box by
(M + 2) / M about the centre, truncates the corners toward zero (`.to(int64)`), resizes the
padded mask bilinearly (align_corners=False) to (y2 - y1 + 1, x2 - x1 + 1) (each at least 1)
and copies the part inside the image. Only that visible part is ever computed here.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.roi_heads import expand_boxes

from .. import glue_threads

COORD_LIMIT = float(2**30)  # |coordinates| are clamped here before the int64 cast (the oracle would overflow)


@dataclass(frozen=True)
class PasteGeometry:
    """Per-instance geometry. padded: Tensor[N, M + 2, M + 2] float32 masks with a zero border;
    box: Tensor[N, 4] int64 (x1, y1, x2, y2) of the resized mask in image pixels (inclusive ends);
    region: Tensor[N, 4] int64 (x0, y0, x1, y1) visible part, exclusive ends, empty when
    x1 <= x0 or y1 <= y0 (non-finite boxes are made empty)."""

    padded: Tensor
    box: Tensor
    region: Tensor

    @property
    def out_hw(self) -> Tensor:
        """Tensor[N, 2] int64 (h, w) of the resized mask: (y2 - y1 + 1, x2 - x1 + 1), each >= 1."""
        return torch.stack([self.box[:, 3] - self.box[:, 1] + 1, self.box[:, 2] - self.box[:, 0] + 1], 1).clamp(min=1)


def check_inputs(masks: Tensor, boxes: Tensor, height: int, width: int) -> None:
    """Raise ValueError for malformed shapes (N masks [N, M, M] with N boxes [N, 4], H, W >= 0)."""
    if masks.dim() != 3 or masks.shape[1] != masks.shape[2]:
        raise ValueError(f"paste masks must be Tensor[N, M, M], got {tuple(masks.shape)}")
    if boxes.dim() != 2 or boxes.shape[1] != 4 or boxes.shape[0] != masks.shape[0]:
        raise ValueError(f"paste boxes must be Tensor[N, 4] with N = {masks.shape[0]}, got {tuple(boxes.shape)}")
    if height < 0 or width < 0:
        raise ValueError(f"paste image size must be non-negative, got {height}x{width}")
    if masks.shape[0] > 0 and masks.shape[1] == 0:
        raise ValueError("paste masks must have M >= 1")


def geometry(masks: Tensor, boxes: Tensor, height: int, width: int) -> PasteGeometry:
    """PasteGeometry with torchvision's exact box arithmetic (float32, then truncation toward zero)."""
    box, region = box_geometry(boxes, masks.shape[-1], height, width)
    return PasteGeometry(F.pad(masks.float(), (1, 1, 1, 1)), box, region)


def box_geometry(boxes: Tensor, m: int, height: int, width: int) -> tuple[Tensor, Tensor]:
    """(box, region) of PasteGeometry, on the boxes' device (no host reads). The Triton kernel
    computes the same in float32 inside (paste/_kernels.py `_box`); tests hold the two equal."""
    b = boxes.float()
    finite = torch.isfinite(b).all(1)
    b = torch.where(finite[:, None], b, 0.0).clamp(-COORD_LIMIT, COORD_LIMIT)
    box = expand_boxes(b, float(m + 2) / m).to(torch.int64)
    x0 = box[:, 0].clamp(min=0)
    y0 = box[:, 1].clamp(min=0)
    x1 = (box[:, 2] + 1).clamp(max=width)
    y1 = (box[:, 3] + 1).clamp(max=height)
    region = torch.stack([x0, y0, x1, y1], 1)
    return box, torch.where(finite[:, None], region, 0)


PASTE_MODES = ("torchvision", "detectron2")


def check_mode(mode: str, threshold: float) -> None:
    """ValueError for an unknown mode, or a detectron2 paste with threshold <= 0 (detectron2 writes
    only inside each box's region: a background that passes the threshold has no meaning there)."""
    if mode not in PASTE_MODES:
        raise ValueError(f"unknown paste mode {mode!r}; choose from {', '.join(PASTE_MODES)}")
    if mode == "detectron2" and not threshold > 0:
        raise ValueError(f"the detectron2 paste needs threshold > 0, got {threshold}")


def detectron2_regions(boxes: Tensor, height: int, width: int) -> Tensor:
    """Tensor[N, 4] int64 (x0, y0, x1, y1), exclusive ends: the pixels detectron2's paste computes
    for each box (layers/mask_ops.py, skip_empty): floor(x1) - 1 .. ceil(x2) + 1 (same for y),
    clipped to the image. Boxes with a non-finite coordinate, x2 <= x1 or y2 <= y1 (detectron2
    drops those before pasting) get an empty region. Every pixel outside a region pastes to a
    probability < 0.5 (its centre lies over half a mask cell outside the box), so it is background."""
    b = boxes.float()
    ok = torch.isfinite(b).all(1) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    b = torch.where(ok[:, None], b, 0.0).clamp(-COORD_LIMIT, COORD_LIMIT)
    lo = (torch.floor(b[:, :2]) - 1).clamp(min=0)
    x1 = (torch.ceil(b[:, 2]) + 1).clamp(max=width)
    y1 = (torch.ceil(b[:, 3]) + 1).clamp(max=height)
    region = torch.stack([lo[:, 0], lo[:, 1], x1, y1], 1).to(torch.int64)
    return torch.where(ok[:, None], region, 0)


def detectron2_probs(mask: Tensor, box: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Pasted probabilities Tensor[len(rows), len(cols)] float32 of one mask Tensor[M, M] over image
    rows x cols (int64), detectron2's arithmetic (layers/mask_ops.py _do_paste_mask): the pixel
    centre p + 0.5 is mapped to g = (p + 0.5 - x1) / (x2 - x1) * 2 - 1 in float32 and the mask is
    sampled there by F.grid_sample (bilinear, zero padding, align_corners=False: mask coordinate
    (g + 1) * M / 2 - 0.5, taps outside the M x M mask read 0)."""
    b = box.float()
    x = (cols.to(torch.float32) + 0.5 - b[0]) / (b[2] - b[0]) * 2 - 1
    y = (rows.to(torch.float32) + 0.5 - b[1]) / (b[3] - b[1]) * 2 - 1
    grid = torch.stack([x[None, :].expand(len(y), len(x)), y[:, None].expand(len(y), len(x))], dim=2)
    return F.grid_sample(mask.float()[None, None], grid[None], mode="bilinear", padding_mode="zeros",
                         align_corners=False)[0, 0]


def background_value(threshold: float) -> bool:
    """What the oracle yields outside every box: 0.0 > threshold compared in float32."""
    return bool(torch.tensor(0.0) > threshold)


def paint_priority(scores: Tensor | None, n: int, device: torch.device | str = "cpu") -> Tensor:
    """Tensor[N] int64 rank of each instance (on `device`, or the scores' device): 0 = painted on
    top. Highest score first; ties (and scores=None) go to the lower index."""
    if scores is None:
        return torch.arange(n, device=device)
    order = torch.argsort(-scores.detach().float(), stable=True)
    rank = torch.empty(n, dtype=torch.int64, device=order.device)
    rank[order] = torch.arange(n, device=order.device)
    return rank


@dataclass(frozen=True)
class PastedInstances:
    """Output of `paste_id_map`: the image's instance-id map plus each instance's own cropped mask.

    id_map: Tensor[H, W] int32: -1 = background, else the index (into masks/boxes) of the
        instance that owns the pixel: among instances whose mask covers it, the highest score
        (ties: the lower index).
    regions: Tensor[N, 4] int64 (x0, y0, x1, y1), the clipped integer box of each instance in
        image pixels, exclusive ends (empty when x1 <= x0 or y1 <= y0).
    packed: Tensor[sum_i h_i * w_i] bool, the crops back to back; offsets: Tensor[N + 1] int64.
    crop(i) is instance i's full mask (not occluded by others) inside regions[i]; it equals
    `paste(...)[i, y0:y1, x0:x1]`, and paste() is zero outside regions.
    """

    id_map: Tensor
    regions: Tensor
    packed: Tensor
    offsets: Tensor

    def __len__(self) -> int:
        return int(self.regions.shape[0])

    def crop(self, i: int) -> Tensor:
        """Tensor[y1 - y0, x1 - x0] bool of instance i."""
        x0, y0, x1, y1 = (int(v) for v in self.regions[i])
        h, w = max(y1 - y0, 0), max(x1 - x0, 0)
        return self.packed[int(self.offsets[i]) : int(self.offsets[i + 1])].view(h, w)

    def cpu(self) -> "PastedInstances":
        """The same on the host (one copy of each tensor: id map, regions, crops, offsets)."""
        return PastedInstances(self.id_map.cpu(), self.regions.cpu(), self.packed.cpu(), self.offsets.cpu())

    def prefix(self, k: int) -> "PastedInstances":
        """Instances 0..k-1 only, for instances ordered by decreasing score (Detections.above):
        a pixel whose owner is among them keeps it; any other pixel is covered by none of them
        (they all score at least as high as its owner, so one covering it would own it)."""
        id_map = torch.where(self.id_map < k, self.id_map, -1)
        return PastedInstances(id_map, self.regions[:k], self.packed[: int(self.offsets[k])], self.offsets[: k + 1])

    @property
    def crops(self) -> list[Tensor]:
        return [self.crop(i) for i in range(len(self))]

    def full_masks(self) -> Tensor:
        """Tensor[N, H, W] bool, equal to `paste(masks, boxes, H, W, threshold)` for threshold >= 0.
        The crops are written on the glue's threads when large (their fresh pages fault in there)."""
        h, w = self.id_map.shape
        out = lazy_zeros((len(self), h, w))
        packed = self.packed.cpu().numpy()
        starts = self.offsets.tolist()
        shown = [(i, r) for i, r in enumerate(self.regions.tolist()) if r[2] > r[0] and r[3] > r[1]]

        def place(instance) -> None:
            i, (x0, y0, x1, y1) = instance
            out[i, y0:y1, x0:x1] = packed[starts[i] : starts[i + 1]].reshape(y1 - y0, x1 - x0)

        areas = [(r[2] - r[0]) * (r[3] - r[1]) for _, r in shown]
        glue_threads.map_balanced(place, shown, areas, min_cost=THREADED_PLACE_PIXELS)
        return torch.from_numpy(out).to(self.id_map.device)


LAZY_ZEROS_MIN_BYTES = 1 << 22  # numpy asks for huge pages from 4 MiB on
THREADED_PLACE_PIXELS = 1 << 20  # crop pixels below which full_masks places them on the calling thread


def lazy_zeros(shape: tuple[int, ...], dtype=np.bool_) -> np.ndarray:
    """A writable zero-filled array on its own anonymous memory mapping, in small pages.

    Full-size mask stacks (Tensor[N, H, W] bool: 207 MB for 100 masks at 1080p) are written only
    inside the boxes, so the rest should never be touched: fresh anonymous pages are zero and
    only the written ones are faulted in. np.zeros gives the same for 4 KiB pages, but numpy
    advises the kernel to back arrays of 4 MiB or more with huge pages (MADV_HUGEPAGE), and with
    the kernel's default `defrag=madvise` a huge-page fault may compact memory synchronously:
    measured here, one call in ten of a 37 ms paste took 440-480 ms. This mapping is never
    advised: no compaction stalls, at ~10 ms more faults per 207 MB (47 vs 37 ms median). The
    mapping is private (Python's default for anonymous maps is MAP_SHARED: shared memory, whose
    faults cost more, 100 masks into 800x1333 26.3 -> 20.2 ms, and which a forked child would
    write through to its parent). It is unmapped when the last array or tensor viewing it is freed."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if nbytes < LAZY_ZEROS_MIN_BYTES:
        return np.zeros(shape, dtype=dtype)
    mapping = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(mapping, dtype=dtype).reshape(shape)


def crop_offsets(region: Tensor) -> Tensor:
    """Tensor[N + 1] int64 start of each instance's crop in the packed buffer."""
    area = ((region[:, 2] - region[:, 0]).clamp(min=0) * (region[:, 3] - region[:, 1]).clamp(min=0))
    return torch.cat([area.new_zeros(1), torch.cumsum(area, 0)])
