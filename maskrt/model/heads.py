"""Box and mask heads, inference only, with torchvision's RoIHeads numerics."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import kernels
from .boxes import clip_boxes, decode_boxes, keep_min_size

BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


@dataclass(frozen=True)
class DetectionParams:
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    detections_per_img: int = 100
    min_box_size: float = 1e-2
    sampling_ratio: int = 2


def infer_spatial_scales(features: list[Tensor], image_sizes: list[tuple[int, int]]) -> list[float]:
    """1 / stride per level, as torchvision infers it: 2 ** round(log2(H_l / max image height))."""
    max_h = max(s[0] for s in image_sizes)
    return [2.0 ** round(math.log2(f.shape[-2] / max_h)) for f in features]


def rois_with_batch_index(boxes: list[Tensor]) -> Tensor:
    """Per-image Tensor[N_i, 4] -> Tensor[sum N_i, 5] rows (image index, x1, y1, x2, y2)."""
    ids = [torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)]
    return torch.cat([torch.cat(ids), torch.cat(boxes)], dim=1)


BoxFn = Callable[[Tensor], tuple[Tensor, Tensor]]
MaskFn = Callable[[Tensor], Tensor]


class RoIHeads:
    """Box head (classify + refine proposals), then the mask head on the kept detections.

    box_fn: pooled Tensor[R, C, S, S] -> (class logits Tensor[R, K], box deltas Tensor[R, 4K]).
    mask_fn: pooled Tensor[N, C, 2S', 2S'] ... -> mask logits Tensor[N, K, M, M].
    The eager model, every backend and the TensorRT graph run this code (sizes may be a traced
    graph's tensors; RoIAlign and NMS go through maskrt.kernels, plugin nodes when traced).
    Head outputs are taken in float32 (an fp16 stage's outputs are cast up: boxes stay fp32).
    """

    def __init__(self, box_fn: BoxFn, mask_fn: MaskFn, params: DetectionParams, box_pool: int, mask_pool: int):
        self.box_fn, self.mask_fn = box_fn, mask_fn
        self.params = params
        self.box_pool, self.mask_pool = box_pool, mask_pool

    def __call__(self, features: list[Tensor], proposals: list[Tensor], image_sizes: list,
                 spatial_scales: list[float] | None = None):
        """Returns per image (boxes Tensor[N, 4], scores Tensor[N], labels Tensor[N], masks Tensor[N, M, M]).

        image_sizes: resized (h, w) per image, tuples or Tensor[2]; spatial_scales: 1 / stride
        per level (default: inferred from the features as torchvision does)."""
        scales = spatial_scales or infer_spatial_scales(features, image_sizes)
        class_logits, box_regression = self.box_fn(self._pool(features, proposals, scales, self.box_pool))
        per_image = zip(_split(class_logits.float(), proposals), _split(box_regression.float(), proposals),
                        proposals, image_sizes)
        dets = [self._postprocess(logits, deltas, props, size) for logits, deltas, props, size in per_image]
        masks = self._masks(features, [d[0] for d in dets], [d[2] for d in dets], scales)
        return [(b, s, lab, m) for (b, s, lab), m in zip(dets, masks)]

    def _pool(self, features: list[Tensor], boxes: list[Tensor], scales: list[float], size: int) -> Tensor:
        rois = rois_with_batch_index(boxes)
        return kernels.roi_align(features, rois, list(scales), size, self.params.sampling_ratio, False)

    def _postprocess(self, logits: Tensor, deltas: Tensor, proposals: Tensor, image_size):
        """Drop background, threshold, class-wise decode and clip, NMS per class, top-k.

        torchvision decodes and clips all R x K boxes, then keeps the (box, class) pairs scoring
        above the threshold; decoding and clipping are elementwise per pair, so here the pairs are
        selected first (in the same order) and only they are decoded: the same boxes, bit for
        bit, without forming R x K x 4 (1000 x 91 x 4 for COCO)."""
        p = self.params
        num_classes = logits.shape[-1]
        scores = F.softmax(logits, -1)[:, 1:].reshape(-1)  # (proposal, class >= 1) pairs, row-major
        keep = torch.where(scores > p.score_thresh)[0]
        rows = torch.div(keep, num_classes - 1, rounding_mode="floor")
        labels = torch.remainder(keep, num_classes - 1) + 1
        picked = deltas.reshape(-1, num_classes, 4)[rows, labels]  # [M, 4]
        boxes = clip_boxes(decode_boxes(picked, proposals[rows], BOX_CODER_WEIGHTS)[:, 0], image_size)
        scores = scores[keep]
        keep = keep_min_size(boxes, p.min_box_size)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = kernels.nms(boxes, scores, labels, p.nms_thresh, p.detections_per_img)
        return boxes[keep], scores[keep], labels[keep]

    def _masks(self, features, boxes: list[Tensor], labels: list[Tensor], scales: list[float]) -> list[Tensor]:
        """Mask probabilities Tensor[N, M, M] float32 of each detection's own class."""
        if not torch.jit.is_tracing() and sum(b.shape[0] for b in boxes) == 0:
            size = 2 * self.mask_pool
            return [features[0].new_zeros((0, size, size), dtype=torch.float32) for _ in boxes]
        logits = self.mask_fn(self._pool(features, boxes, scales, self.mask_pool))
        label = labels[0] if len(labels) == 1 else torch.cat(labels)
        probs = logits[torch.arange(label.shape[0], device=logits.device), label].float().sigmoid()
        return _split(probs, boxes)


def _split(rows: Tensor, groups: list[Tensor]) -> list[Tensor]:
    """rows split into len(groups) parts of len(group) rows each (one group: as is, so that a traced
    graph keeps its dynamic row count)."""
    if len(groups) == 1:
        return [rows]
    return list(rows.split([g.shape[0] for g in groups]))
