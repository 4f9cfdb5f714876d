"""maskrt's Mask R-CNN: torchvision's modules (same state-dict keys) with our own inference path.

The three data-dependent ops go through `maskrt.kernels`, so one model definition serves the
reference, CPU and Triton implementations and every export target.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from .arch import ArchConfig
from .boxes import scale_boxes
from .heads import DetectionParams, RoIHeads
from .rpn import RPN, RPNParams
from .transform import InputPolicy, preprocess


@dataclass
class RawDetections:
    """One image's detections before mask paste.

    boxes: Tensor[N, 4] float32 xyxy in the original image's pixels; scores: Tensor[N] (sorted
    descending); labels: Tensor[N] int64 checkpoint class ids; mask_probs: Tensor[N, M, M]
    (M = 28) sigmoid probabilities of each detection's class over its box.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    mask_probs: Tensor
    image_size: tuple[int, int]


class MaskRCNN(nn.Module):
    """Inference-only Mask R-CNN built from a torchvision MaskRCNN's submodules."""

    def __init__(self, tv_model: nn.Module, config: ArchConfig, policy: InputPolicy | None = None,
                 rpn: RPNParams | None = None, detection: DetectionParams | None = None):
        super().__init__()
        self.config = config
        self.policy = policy or InputPolicy()
        self.backbone = tv_model.backbone
        cells = tv_model.rpn.anchor_generator.cell_anchors
        self.rpn = RPN(tv_model.rpn.head, list(cells), rpn or RPNParams())
        rh = tv_model.roi_heads
        self.roi_heads = RoIHeads(rh.box_head, rh.box_predictor, rh.mask_head, rh.mask_predictor,
                                  detection or DetectionParams(), config.box_pool_size, config.mask_pool_size)
        self.eval()

    def with_params(self, policy: InputPolicy | None = None, rpn: RPNParams | None = None,
                    detection: DetectionParams | None = None) -> "MaskRCNN":
        """Change thresholds / input policy in place (no weights are copied). Returns self."""
        if policy is not None:
            self.policy = policy
        if rpn is not None:
            self.rpn.params = rpn
        if detection is not None:
            self.roi_heads.params = detection
        return self

    def set_score_threshold(self, score_thresh: float) -> None:
        self.roi_heads.params = replace(self.roi_heads.params, score_thresh=score_thresh)

    def forward(self, batch: Tensor, image_sizes: list[tuple[int, int]]):
        """batch: Tensor[B, 3, H, W] normalised, padded to 32; image_sizes: resized (h, w) per image.

        Returns per image (boxes, scores, labels, mask_probs) in resized-image coordinates.
        """
        named = self.backbone(batch)
        proposals = self.rpn(list(named.values()), (batch.shape[-2], batch.shape[-1]), image_sizes)
        # RoIs are pooled from the FPN levels P2-P5 only; "pool" (P6) exists for the RPN.
        roi_features = [f for name, f in named.items() if name != "pool"]
        return self.roi_heads(roi_features, proposals, image_sizes)

    @torch.inference_mode()
    def detect(self, images: list[Tensor]) -> list[RawDetections]:
        """images: list of Tensor[3, H, W] float in [0, 1]. Boxes come back in input pixels."""
        batch, sizes = preprocess(images, self.policy)
        outputs = self(batch, sizes)
        results = []
        for img, size, (boxes, scores, labels, masks) in zip(images, sizes, outputs):
            original = (int(img.shape[-2]), int(img.shape[-1]))
            results.append(RawDetections(scale_boxes(boxes, size, original), scores, labels, masks, original))
        return results
