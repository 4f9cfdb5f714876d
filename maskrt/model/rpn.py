"""Region proposal network, inference only, with torchvision's RegionProposalNetwork numerics."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from .. import kernels
from .boxes import clip_boxes, decode_boxes, keep_min_size


@dataclass(frozen=True)
class RPNParams:
    pre_nms_top_n: int = 1000  # per level
    post_nms_top_n: int = 1000
    nms_thresh: float = 0.7
    score_thresh: float = 0.0
    min_size: float = 1e-3

    def with_proposals(self, proposals: int) -> "RPNParams":
        """These parameters with `proposals` post-NMS proposals per image and the pre-NMS count
        per level scaled in the same ratio: pre = ceil(proposals * pre_nms_top_n / post_nms_top_n)
        (torchvision's and detectron2's test settings are 1000 / 1000, so pre-NMS per level =
        proposals: at most L * proposals candidates enter the NMS, of which the best `proposals`
        are kept, as at the default)."""
        pre = -(-proposals * self.pre_nms_top_n // self.post_nms_top_n)
        return replace(self, pre_nms_top_n=max(1, pre), post_nms_top_n=proposals)


def anchors_at(cell_anchors: Tensor, index: Tensor, width, stride) -> Tensor:
    """The anchors of flat positions `index` (Tensor[k] int64 into a level's (y, x, anchor) order,
    as torchvision's AnchorGenerator lays them out) -> Tensor[k, 4], without making the level's
    H * W * A anchors. Anchor (y, x, a) = cell_anchors[a] + (x * stride_w, y * stride_h, x *
    stride_w, y * stride_h): an integer shift plus the float cell, bit for bit torchvision's.

    cell_anchors: Tensor[A, 4] centred at 0 (rounded); width: the level's W; stride: (h, w) pixels.
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

    Numerics are torchvision's RegionProposalNetwork.filter_proposals (inference settings). The
    eager model, every backend and the TensorRT graph (maskrt.tensorrt.graph traces this code)
    run it: sizes may be ints or a traced graph's tensors, and NMS goes through maskrt.kernels
    (torch.ops.maskrt.nms, a plugin node, when traced).
    """

    def __init__(self, cell_anchors: list[Tensor], params: RPNParams):
        self.cell_anchors = [a.float() for a in cell_anchors]  # Tensor[A, 4] per level
        self.params = params

    def __call__(self, logits: list[Tensor], deltas: list[Tensor], padded_hw, image_sizes: list) -> list[Tensor]:
        """logits: L x Tensor[B, A, H_l, W_l]; deltas: L x Tensor[B, 4A, H_l, W_l]; padded_hw: the
        batch's (H, W); image_sizes: B resized (h, w), tuples or Tensor[2].

        Returns B proposal sets Tensor[P_i, 4] float32 xyxy in resized-image pixels, best first.
        """
        if len(image_sizes) == 1:
            return [self.one_image(logits, deltas, padded_hw, image_sizes[0])]
        return [self.one_image([lg[i:i + 1] for lg in logits], [dl[i:i + 1] for dl in deltas], padded_hw, size)
                for i, size in enumerate(image_sizes)]

    def one_image(self, logits: list[Tensor], deltas: list[Tensor], padded_hw, image_hw) -> Tensor:
        """Proposals of one image (logits: L x Tensor[1, A, H_l, W_l]) -> Tensor[P, 4], best first."""
        p = self.params
        boxes, scores, levels = [], [], []
        for i, (lg, dl, cells) in enumerate(zip(logits, deltas, self.cell_anchors)):
            b, s = self._top_level(lg.float(), dl.float(), cells, padded_hw)
            boxes.append(b)
            scores.append(s)
            levels.append(torch.full_like(s, i, dtype=torch.int64))
        boxes, scores, levels = torch.cat(boxes), torch.sigmoid(torch.cat(scores)), torch.cat(levels)
        boxes = clip_boxes(boxes, image_hw)
        keep = keep_min_size(boxes, p.min_size)
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = torch.where(scores >= p.score_thresh)[0]
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = kernels.nms(boxes, scores, levels, p.nms_thresh, p.post_nms_top_n)
        return boxes[keep]

    def _top_level(self, logits: Tensor, deltas: Tensor, cells: Tensor, padded_hw):
        """Top-k anchors of one level by objectness logit, decoded (decode is elementwise, so this
        equals torchvision's decode-all-then-select) -> (Tensor[k, 4], logits Tensor[k]). Only the
        k selected anchors and deltas are formed (anchors_at; a gather of the deltas), not the
        level's H * W * A of each (200k at P2 of an 800x1344 input).

        logits: Tensor[1, A, h, w]; deltas: Tensor[1, 4A, h, w]; stride = padded size // (h, w).
        """
        h, w = logits.shape[-2], logits.shape[-1]
        stride = (padded_hw[0] // h, padded_hw[1] // w)
        a = cells.shape[0]
        objectness = flatten_level(logits, 1).flatten(1)  # (y, x, anchor) order, as torchvision
        top_logits, top_idx = objectness.topk(_top_count(objectness, self.params.pre_nms_top_n), dim=1)
        index = top_idx[0]  # row selection (Gather in a traced graph)
        anchors = anchors_at(cells.to(logits.device, logits.dtype), index, w, stride)
        # deltas[0, a * 4 + c, y, x] is delta c of anchor (y, x, a)
        picked = deltas[0].reshape(a, 4, -1)[torch.remainder(index, a), :, torch.div(index, a, rounding_mode="floor")]
        boxes = decode_boxes(picked, anchors, (1.0, 1.0, 1.0, 1.0))[:, 0]
        return boxes, top_logits[0]


def _top_count(objectness: Tensor, limit: int):
    """min(limit, anchors in the level): an int, or in a traced graph a tensor of the dynamic size."""
    if torch.jit.is_tracing():
        return torch.clamp(torch._shape_as_tensor(objectness)[1], max=limit)
    return min(limit, objectness.shape[1])
