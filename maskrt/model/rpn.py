"""Region proposal network, inference only, with torchvision's RegionProposalNetwork numerics or
detectron2's (RPN + find_top_rpn_proposals)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from .. import kernels
from ..kernels._numba import compiled_on_first_use
from .boxes import clip_boxes, decode_boxes, keep_min_size


@dataclass(frozen=True)
class RPNParams:
    pre_nms_top_n: int = 1000  # per level
    post_nms_top_n: int = 1000
    nms_thresh: float = 0.7
    score_thresh: float = 0.0  # torchvision numerics only (on sigmoid probabilities)
    min_size: float = 1e-3  # torchvision: keep w, h >= min_size; detectron2: keep w, h > min_size

    def with_proposals(self, proposals: int) -> "RPNParams":
        """These parameters with `proposals` post-NMS proposals per image and the pre-NMS count
        per level scaled in the same ratio: pre = ceil(proposals * pre_nms_top_n / post_nms_top_n)
        (torchvision's and detectron2's test settings are 1000 / 1000, so pre-NMS per level =
        proposals: at most L * proposals candidates enter the NMS, of which the best `proposals`
        are kept, as at the default)."""
        pre = -(-proposals * self.pre_nms_top_n // self.post_nms_top_n)
        return replace(self, pre_nms_top_n=max(1, pre), post_nms_top_n=proposals)


def cell_anchors(numerics: str = "torchvision", sizes=((32,), (64,), (128,), (256,), (512,)),
                 ratios=(0.5, 1.0, 2.0)) -> list[Tensor]:
    """Per level Tensor[A, 4] anchors centred at 0, A = len(ratios), ordered by (size, ratio).

    torchvision (AnchorGenerator): w = size / sqrt(ratio), h = size * sqrt(ratio), rounded to
    integers. detectron2 (DefaultAnchorGenerator): w = sqrt(size ** 2 / ratio), h = ratio * w, in
    float64, not rounded, then float32."""
    if numerics != "detectron2":
        from torchvision.models.detection.anchor_utils import AnchorGenerator

        return [a.float() for a in AnchorGenerator(sizes, (ratios,) * len(sizes)).cell_anchors]
    levels = []
    for level_sizes in sizes:
        rows = []
        for size in level_sizes:
            for ratio in ratios:
                w = math.sqrt(size * size / ratio)
                h = ratio * w
                rows.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
        levels.append(torch.tensor(rows, dtype=torch.float32))
    return levels

def anchors_at(cell_anchors: Tensor, index: Tensor, width, stride) -> Tensor:
    """The anchors of flat positions `index` (Tensor[k] int64 into a level's (y, x, anchor) order,
    as torchvision's AnchorGenerator lays them out) -> Tensor[k, 4], without making the level's
    H * W * A anchors. Anchor (y, x, a) = cell_anchors[a] + (x * stride_w, y * stride_h, x *
    stride_w, y * stride_h): an integer shift plus the float cell, bit for bit torchvision's.

    cell_anchors: Tensor[A, 4] centred at 0 (see cell_anchors); width: the level's W; stride: (h, w) pixels.
    """
    a = cell_anchors.shape[0]
    pixel = torch.div(index, a, rounding_mode="floor")
    shift_x = torch.remainder(pixel, width) * stride[1]
    shift_y = torch.div(pixel, width, rounding_mode="floor") * stride[0]
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
    return shifts + cell_anchors[torch.remainder(index, a)]


def flatten_level(t: Tensor, channels: int) -> Tensor:
    """Head output Tensor[B, A * C, H, W] -> Tensor[B, H * W * A, C]."""
    b, _, h, w = t.shape
    return t.view(b, -1, channels, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, channels)


class ProposalFilter:
    """Proposals from RPN head outputs: per-level top-k, decode, clip, filter, NMS per level.

    numerics "torchvision": RegionProposalNetwork.filter_proposals (inference settings): anchor
    strides padded size // feature size; after the per-level top-k of logits, sigmoid
    probabilities; clip; keep w, h >= min_size and probability >= score_thresh; NMS per level on
    the probabilities. numerics "detectron2": find_top_rpn_proposals: strides 4, 8, ... (2 ** (l + 2));
    drop rows with a non-finite box or logit; clip; keep w, h > min_size; NMS per level on the
    logits (no sigmoid, no score threshold). Both keep the best post_nms_top_n.
    The eager model, every backend and the TensorRT graph (maskrt.tensorrt.graph traces this code)
    run it: sizes may be ints or a traced graph's tensors, and NMS goes through maskrt.kernels
    (torch.ops.maskrt.nms, a plugin node, when traced).
    """

    def __init__(self, cell_anchors: list[Tensor], params: RPNParams, numerics: str = "torchvision"):
        self.cell_anchors = [a.float() for a in cell_anchors]  # Tensor[A, 4] per level
        self.params = params
        self.detectron2 = numerics == "detectron2"

    def __call__(self, logits: list[Tensor], deltas: list[Tensor], padded_hw, image_sizes: list) -> list[Tensor]:
        """logits: L x Tensor[B, A, H_l, W_l]; deltas: L x Tensor[B, 4A, H_l, W_l]; padded_hw: the
        batch's (H, W); image_sizes: B resized (h, w), tuples or Tensor[2].

        Returns B proposal sets Tensor[P_i, 4] float32 xyxy in resized-image pixels, best first.
        """
        if len(image_sizes) == 1:
            return [self.one_image(logits, deltas, padded_hw, image_sizes[0])]
        return [self.one_image([lg[i:i + 1] for lg in logits], [dl[i:i + 1] for dl in deltas], padded_hw, size)
                for i, size in enumerate(image_sizes)]

    def one_image(self, logits: list[Tensor], deltas: list[Tensor], padded_hw, image_hw, with_scores: bool = False):
        """Proposals of one image (logits: L x Tensor[1, A, H_l, W_l]) -> Tensor[P, 4], best first
        (with_scores: and their scores Tensor[P], probabilities or detectron2's logits)."""
        p = self.params
        picked, anchors, scores, levels = [], [], [], []
        for i, (lg, dl, cells) in enumerate(zip(logits, deltas, self.cell_anchors)):
            if self.detectron2:  # the level's stride, 4 at P2
                stride = (2 ** (i + 2),) * 2
            else:  # torchvision: padded size // feature size (61, not 64, at P6 of an 800-row batch)
                stride = (padded_hw[0] // lg.shape[-2], padded_hw[1] // lg.shape[-1])
            d, a, s = self._top_level(lg.float(), dl.float(), cells, stride)
            picked.append(d)
            anchors.append(a)
            scores.append(s)
            levels.append(torch.full_like(s, i, dtype=torch.int64))
        # decoding is elementwise: all levels' picked anchors at once (one decode instead of one per level)
        boxes = decode_boxes(torch.cat(picked), torch.cat(anchors), (1.0, 1.0, 1.0, 1.0))[:, 0]
        scores, levels = torch.cat(scores), torch.cat(levels)
        if self.detectron2:
            keep = torch.where(torch.isfinite(boxes).all(1) & torch.isfinite(scores))[0]
            boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
            boxes = clip_boxes(boxes, image_hw)
            keep = keep_min_size(boxes, p.min_size, strict=True)
        else:
            scores = torch.sigmoid(scores)
            boxes = clip_boxes(boxes, image_hw)
            keep = keep_min_size(boxes, p.min_size)
            boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
            keep = torch.where(scores >= p.score_thresh)[0]
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = kernels.nms(boxes, scores, levels, p.nms_thresh, p.post_nms_top_n)
        return (boxes[keep], scores[keep]) if with_scores else boxes[keep]

    def _top_level(self, logits: Tensor, deltas: Tensor, cells: Tensor, stride):
        """Top-k anchors of one level by objectness logit -> (their deltas Tensor[k, 4], the anchors
        Tensor[k, 4], logits Tensor[k]), to be decoded (decode is elementwise, so decoding the selected
        ones equals torchvision's decode-all-then-select). Only the k selected anchors and deltas are
        formed (anchors_at; a gather of the deltas), not the level's H * W * A of each (200k at P2 of
        an 800x1344 input).

        logits: Tensor[1, A, h, w]; deltas: Tensor[1, 4A, h, w]; stride: the anchors' (y, x) step.
        """
        w = logits.shape[-1]
        a = cells.shape[0]
        objectness = flatten_level(logits, 1).flatten(1)  # (y, x, anchor) order, as torchvision
        top_logits, top_idx = objectness.topk(_top_count(objectness, self.params.pre_nms_top_n), dim=1)
        index = top_idx[0]  # row selection (Gather in a traced graph)
        cells = cells.to(logits.device, logits.dtype)
        if on_host(deltas, stride):
            picked, anchors = picked_anchors_and_deltas(index, deltas, cells, w, stride)
            return picked, anchors, top_logits[0]
        anchors = anchors_at(cells, index, w, stride)
        # deltas[0, a * 4 + c, y, x] is delta c of anchor (y, x, a)
        picked = deltas[0].reshape(a, 4, -1)[torch.remainder(index, a), :, torch.div(index, a, rounding_mode="floor")]
        return picked, anchors, top_logits[0]


def on_host(deltas: Tensor, stride) -> bool:
    """Whether a level's anchors and deltas are picked by the compiled pass: float32 CPU tensors,
    integer strides, not traced (a traced graph keeps the tensor ops: Gather nodes)."""
    return (deltas.device.type == "cpu" and deltas.dtype == torch.float32 and not torch.jit.is_tracing()
            and all(isinstance(s, int) for s in stride))


def picked_anchors_and_deltas(index: Tensor, deltas: Tensor, cells: Tensor, width: int,
                              stride) -> tuple[Tensor, Tensor]:
    """The deltas and anchors of flat positions `index` of one level in one numba pass over the k
    positions (instead of ~13 small torch ops): (picked Tensor[k, 4], anchors Tensor[k, 4]) float32,
    bit for bit `deltas[0].reshape(A, 4, -1)[index % A, :, index // A]` and `anchors_at(cells, index,
    width, stride)` (the integer shift converted to float32, then the cell added: torch's promotion).

    index: Tensor[k] int64 in the level's (y, x, anchor) order; deltas: Tensor[1, 4A, H, W] float32;
    cells: Tensor[A, 4] float32; stride: (h, w) ints."""
    a = cells.shape[0]
    planes = np.ascontiguousarray(deltas.detach()[0].reshape(4 * a, -1).numpy())  # a view for a dense output
    k = index.shape[0]
    picked, anchors = np.empty((k, 4), np.float32), np.empty((k, 4), np.float32)
    _pick_kernel()(np.ascontiguousarray(index.numpy()), planes, np.ascontiguousarray(cells.detach().numpy()),
                   int(width), int(stride[0]), int(stride[1]), picked, anchors)
    return torch.from_numpy(picked), torch.from_numpy(anchors)


def _pick_anchor_rows(index, planes, cells, width, stride_y, stride_x, picked, anchors):  # pragma: no cover - numba
    """picked[i, c] = planes[(index[i] % A) * 4 + c, index[i] // A]; anchors[i] = float32 shift of
    pixel index[i] // A + cells[index[i] % A] (picked_anchors_and_deltas)."""
    a = cells.shape[0]
    for i in range(index.shape[0]):
        pixel = index[i] // a
        cell = index[i] - pixel * a
        shift_x = np.float32((pixel % width) * stride_x)
        shift_y = np.float32((pixel // width) * stride_y)
        anchors[i, 0] = shift_x + cells[cell, 0]
        anchors[i, 1] = shift_y + cells[cell, 1]
        anchors[i, 2] = shift_x + cells[cell, 2]
        anchors[i, 3] = shift_y + cells[cell, 3]
        for c in range(4):
            picked[i, c] = planes[cell * 4 + c, pixel]


_pick_kernel = compiled_on_first_use(_pick_anchor_rows)  # no fastmath: each sum rounds as torch's


def warm_up() -> None:
    """Compile (or load from numba's cache) the picking pass for a frame's argument types."""
    deltas = torch.zeros(1, 12, 2, 3)
    picked_anchors_and_deltas(torch.arange(4), deltas, torch.zeros(3, 4), 3, (4, 4))


def _top_count(objectness: Tensor, limit: int):
    """min(limit, anchors in the level): an int, or in a traced graph a tensor of the dynamic size."""
    if torch.jit.is_tracing():
        return torch.clamp(torch._shape_as_tensor(objectness)[1], max=limit)
    return min(limit, objectness.shape[1])
