"""Box and mask heads, inference only, with torchvision's RoIHeads numerics or detectron2's
(StandardROIHeads + FastRCNNOutputLayers.inference + mask_rcnn_inference)."""

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
FPN_SCALES = (0.25, 0.125, 0.0625, 0.03125)  # 1 / stride of P2..P5


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

    box_fn: pooled Tensor[R, C, S, S] -> (class logits Tensor[R, K], box deltas Tensor[R, 4K], or
    Tensor[R, 4] for a class-agnostic regression: the same box for every class).
    mask_fn: pooled Tensor[N, C, 2S', 2S'] ... -> mask logits Tensor[N, K, M, M] (or [N, 1, M, M]:
    one class-agnostic mask). Class 0 is the background (detectron2's last class is moved there
    when its weights are loaded).
    numerics "torchvision": RoIAlign aligned=False with sampling_ratio (2), LevelMapper levels,
    scales inferred from the features as torchvision does; boxes w, h >= min_box_size kept.
    numerics "detectron2": ROIAlignV2 (aligned=True, sampling_ratio 0: adaptive) with its level
    formula and the FPN strides' scales; rows with a non-finite box or score dropped; no box size
    filter. Both: decode, clip, softmax, score > score_thresh, NMS per class, top detections_per_img.
    The eager model, every backend and the TensorRT graph run this code (sizes may be a traced
    graph's tensors; RoIAlign and NMS go through maskrt.kernels, plugin nodes when traced).
    Head outputs are taken in float32 (an fp16 stage's outputs are cast up: boxes stay fp32).
    """

    def __init__(self, box_fn: BoxFn, mask_fn: MaskFn, params: DetectionParams, box_pool: int, mask_pool: int,
                 numerics: str = "torchvision"):
        self.box_fn, self.mask_fn = box_fn, mask_fn
        self.params = params
        self.box_pool, self.mask_pool = box_pool, mask_pool
        self.detectron2 = numerics == "detectron2"
        self.table_memory = kernels.TableMemory()  # the cpu RoIAlign's tables, kept from frame to frame

    def __call__(self, features: list[Tensor], proposals: list[Tensor], image_sizes: list,
                 spatial_scales: list[float] | None = None):
        """Returns per image (boxes Tensor[N, 4], scores Tensor[N], labels Tensor[N], masks Tensor[N, M, M]).

        image_sizes: resized (h, w) per image, tuples or Tensor[2]; spatial_scales: 1 / stride
        per level (default: inferred from the features as torchvision does)."""
        scales = spatial_scales or (FPN_SCALES if self.detectron2 else infer_spatial_scales(features, image_sizes))
        if not torch.jit.is_tracing():  # the box and mask RoIAligns share the cpu kernel's tables
            features = kernels.FeaturePyramid(features, self.table_memory)
        class_logits, box_regression = self.box_fn(self._pool(features, proposals, scales, self.box_pool, self.box_fn))
        per_image = zip(_split(class_logits.float(), proposals), _split(box_regression.float(), proposals),
                        proposals, image_sizes)
        dets = [self._postprocess(logits, deltas, props, size) for logits, deltas, props, size in per_image]
        masks = self._masks(features, [d[0] for d in dets], [d[2] for d in dets], scales)
        return [(b, s, lab, m) for (b, s, lab), m in zip(dets, masks)]

    def _pool(self, features: list[Tensor], boxes: list[Tensor], scales: list[float], size: int, stage=None) -> Tensor:
        """RoIAlign of `boxes` -> Tensor[R, C, size, size]; written straight into the input buffer of
        `stage` (the head it feeds) where the stage lends one (`input_view`: a compiled CPU stage)."""
        rois = rois_with_batch_index(boxes)
        lend = getattr(stage, "input_view", None)
        out = lend(rois.shape[0], (features[0].shape[1], size, size)) if lend and not torch.jit.is_tracing() else None
        if self.detectron2:
            return kernels.roi_align(features, rois, list(scales), size, self.params.sampling_ratio, True, 224, 4,
                                     "detectron2", out=out)
        return kernels.roi_align(features, rois, list(scales), size, self.params.sampling_ratio, False, out=out)

    def _postprocess(self, logits: Tensor, deltas: Tensor, proposals: Tensor, image_size):
        """Drop background, threshold, class-wise decode and clip, NMS per class, top-k.

        logits: Tensor[R, K]; deltas: Tensor[R, 4K] (class-specific) or Tensor[R, 4] (class-agnostic,
        detectron2's CLS_AGNOSTIC_BBOX_REG); proposals: Tensor[R, 4]."""
        p = self.params
        if self.detectron2:
            boxes, scores, labels = self._detectron2_pairs(logits, deltas, proposals, image_size)
        else:
            boxes, scores, labels = self._scored_pairs(logits, deltas, proposals, image_size)
            keep = keep_min_size(boxes, p.min_box_size)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = kernels.nms(boxes, scores, labels, p.nms_thresh, p.detections_per_img)
        return boxes[keep], scores[keep], labels[keep]

    def _scored_pairs(self, logits: Tensor, deltas: Tensor, proposals: Tensor, image_size):
        """torchvision's order: the (proposal, class >= 1) pairs scoring above the threshold,
        row-major, each decoded with its class's deltas and clipped -> (Tensor[M, 4], Tensor[M],
        labels Tensor[M]).

        torchvision decodes and clips all R x K boxes, then keeps the pairs above the threshold;
        decoding and clipping are elementwise per pair, so here the pairs are selected first (in the
        same order) and only they are decoded: the same boxes, bit for bit, without forming R x K x 4
        (1000 x 91 x 4 for COCO)."""
        num_classes = logits.shape[-1]
        scores = F.softmax(logits, -1)[:, 1:].reshape(-1)
        keep = torch.where(scores > self.params.score_thresh)[0]
        rows = torch.div(keep, num_classes - 1, rounding_mode="floor")
        labels = torch.remainder(keep, num_classes - 1) + 1
        per_class = deltas.reshape(deltas.shape[0], -1, 4)  # [R, K or 1, 4]
        picked = per_class[rows, labels if per_class.shape[1] > 1 else torch.zeros_like(labels)]  # [M, 4]
        boxes = clip_boxes(decode_boxes(picked, proposals[rows], BOX_CODER_WEIGHTS)[:, 0], image_size)
        return boxes, scores[keep], labels

    def _detectron2_pairs(self, logits: Tensor, deltas: Tensor, proposals: Tensor, image_size):
        """detectron2's fast_rcnn_inference_single_image: rows with non-finite boxes or scores go
        first, then all boxes are decoded and clipped and the pairs above the threshold kept (no
        minimum box size) -> (Tensor[M, 4], Tensor[M], labels Tensor[M])."""
        num_classes = logits.shape[-1]
        boxes = decode_boxes(deltas, proposals, BOX_CODER_WEIGHTS)  # Tensor[R, K or 1, 4]
        scores = F.softmax(logits, -1)
        keep = torch.where(torch.isfinite(boxes).flatten(1).all(1) & torch.isfinite(scores).all(1))[0]
        boxes, scores = clip_boxes(boxes[keep], image_size), scores[keep]
        if boxes.shape[1] == 1 and num_classes > 1:  # class-agnostic regression: one box for every class
            boxes = boxes.expand(-1, num_classes, -1)
        labels = torch.arange(num_classes, device=logits.device).view(1, -1).expand_as(scores)
        boxes, scores, labels = boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)
        keep = torch.where(scores > self.params.score_thresh)[0]
        return boxes[keep], scores[keep], labels[keep]

    def _masks(self, features, boxes: list[Tensor], labels: list[Tensor], scales: list[float]) -> list[Tensor]:
        """Mask probabilities Tensor[N, M, M] float32 of each detection's own class."""
        if not torch.jit.is_tracing() and sum(b.shape[0] for b in boxes) == 0:
            size = 2 * self.mask_pool
            return [features[0].new_zeros((0, size, size), dtype=torch.float32) for _ in boxes]
        logits = self.mask_fn(self._pool(features, boxes, scales, self.mask_pool, self.mask_fn))
        label = labels[0] if len(labels) == 1 else torch.cat(labels)
        if logits.shape[1] == 1:  # class-agnostic mask head: the one mask, whatever the class
            label = torch.zeros_like(label)
        probs = logits[torch.arange(label.shape[0], device=logits.device), label].float().sigmoid()
        return _split(probs, boxes)


def _split(rows: Tensor, groups: list[Tensor]) -> list[Tensor]:
    """rows split into len(groups) parts of len(group) rows each (one group: as is, so that a traced
    graph keeps its dynamic row count)."""
    if len(groups) == 1:
        return [rows]
    return list(rows.split([g.shape[0] for g in groups]))
