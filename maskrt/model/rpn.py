"""Region proposal network, inference only, with torchvision's RegionProposalNetwork numerics."""

from __future__ import annotations

from dataclasses import dataclass

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


def grid_anchors(cell_anchors: Tensor, feature_hw: tuple[int, int], stride: tuple[int, int]) -> Tensor:
    """Anchors for one level: Tensor[H * W * A, 4], ordered (y, x, anchor) like torchvision.

    cell_anchors: Tensor[A, 4] centred at 0 (rounded, as torchvision's AnchorGenerator makes them).
    Anchor (y, x) is shifted by (x * stride_w, y * stride_h): top-left aligned, no half-stride.
    """
    h, w = feature_hw
    shifts_x = torch.arange(0, w, dtype=torch.int32, device=cell_anchors.device) * stride[1]
    shifts_y = torch.arange(0, h, dtype=torch.int32, device=cell_anchors.device) * stride[0]
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
    return (shifts.view(-1, 1, 4) + cell_anchors.view(1, -1, 4)).reshape(-1, 4)


def flatten_level(t: Tensor, channels: int) -> Tensor:
    """Head output Tensor[B, A * C, H, W] -> Tensor[B, H * W * A, C]."""
    b, _, h, w = t.shape
    return t.view(b, -1, channels, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, channels)


class ProposalFilter:
    """Proposals from RPN head outputs: per-level top-k, decode, clip, filter, NMS per level.

    Numerics are torchvision's RegionProposalNetwork.filter_proposals (inference settings).
    """

    def __init__(self, cell_anchors: list[Tensor], params: RPNParams):
        self.cell_anchors = [a.float() for a in cell_anchors]  # Tensor[A, 4] per level
        self.params = params

    def __call__(self, logits: list[Tensor], deltas: list[Tensor], padded_hw: tuple[int, int],
                 image_sizes: list[tuple[int, int]]) -> list[Tensor]:
        """logits: L x Tensor[B, A, H_l, W_l]; deltas: L x Tensor[B, 4A, H_l, W_l].

        Returns B proposal sets Tensor[P_i, 4] xyxy in resized-image pixels, best first.
        """
        per_level = [
            self._top_level(lg, dl, cells, padded_hw)
            for lg, dl, cells in zip(logits, deltas, self.cell_anchors)
        ]
        boxes = torch.cat([p[0] for p in per_level], dim=1)
        scores = torch.cat([p[1] for p in per_level], dim=1)
        levels = torch.cat([torch.full((p[0].shape[1],), i, dtype=torch.int64, device=boxes.device)
                            for i, p in enumerate(per_level)])
        return [self._filter(b, s, levels, size) for b, s, size in zip(boxes, scores, image_sizes)]

    def _top_level(self, logits: Tensor, deltas: Tensor, cells: Tensor, padded_hw: tuple[int, int]):
        """Top-k anchors of one level by objectness logit; decodes only those (decode is elementwise,
        so this equals torchvision's decode-all-then-select). -> (Tensor[B, k, 4], Tensor[B, k])."""
        h, w = logits.shape[-2:]
        stride = (padded_hw[0] // h, padded_hw[1] // w)
        anchors = grid_anchors(cells.to(logits.device, logits.dtype), (h, w), stride)
        objectness = flatten_level(logits, 1).flatten(1)
        k = min(self.params.pre_nms_top_n, objectness.shape[1])
        top_logits, top_idx = objectness.topk(k, dim=1)
        box_deltas = flatten_level(deltas, 4)
        picked = torch.gather(box_deltas, 1, top_idx[..., None].expand(-1, -1, 4))
        boxes = [decode_boxes(d, anchors[i], (1.0, 1.0, 1.0, 1.0))[:, 0] for d, i in zip(picked, top_idx)]
        return torch.stack(boxes), top_logits

    def _filter(self, boxes: Tensor, logits: Tensor, levels: Tensor, image_size: tuple[int, int]) -> Tensor:
        p = self.params
        scores = torch.sigmoid(logits)
        boxes = clip_boxes(boxes, image_size[0], image_size[1])
        keep = keep_min_size(boxes, p.min_size)
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = torch.where(scores >= p.score_thresh)[0]
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = kernels.nms(boxes, scores, levels, p.nms_thresh, p.post_nms_top_n)
        return boxes[keep]
