"""maskrt's Mask R-CNN: torchvision's modules (same state-dict keys) with our own inference path.

The network is split into three dense stages, which are what gets exported and compiled:
- `DenseStage`: backbone + FPN + RPN head (the bulk of the FLOPs), image -> features + RPN maps
- `BoxStage`: box head + predictor, pooled RoIs -> class logits + box deltas
- `MaskStage`: mask head + predictor, pooled detections -> mask logits
and the data-dependent glue between them (`Detector`: proposals, RoIAlign, NMS, decode), which
calls the three ops through `maskrt.kernels`. The eager model and every engine backend share
the glue; a backend only supplies the three stages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from .arch import ArchConfig
from .boxes import detectron2_rescale, keep_min_size, scale_boxes
from .heads import DetectionParams, RoIHeads
from .rpn import ProposalFilter, RPNParams, cell_anchors
from .transform import InputPolicy, preprocess


@dataclass
class RawDetections:
    """One image's detections before mask paste.

    boxes: Tensor[N, 4] float32 xyxy in the original image's pixels; scores: Tensor[N] (sorted
    descending); labels: Tensor[N] int64 checkpoint class ids; mask_probs: Tensor[N, M, M]
    (M = 28) sigmoid probabilities of each detection's class over its box. instances: the fused
    paste at image_size with threshold 0.5 when the backend already made it (the TensorRT
    backend pastes on the GPU), else None (Detections pastes on first use). paste_mode: how the
    masks are pasted (maskrt.kernels.paste's mode: the model's numerics).
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    mask_probs: Tensor
    image_size: tuple[int, int]
    instances: object = None  # maskrt.kernels.PastedInstances
    paste_mode: str = "torchvision"


def drop_empty(raw: RawDetections) -> RawDetections:
    """detectron2's last step: detections whose box is empty in the original image (w or h <= 0
    after scaling and clipping) are dropped. A paste made already is dropped too when that happens
    (Detections pastes again on first use)."""
    keep = keep_min_size(raw.boxes, 0.0, strict=True)
    if keep.shape[0] == raw.boxes.shape[0]:
        return raw
    return RawDetections(raw.boxes[keep], raw.scores[keep], raw.labels[keep], raw.mask_probs[keep], raw.image_size,
                         None, raw.paste_mode)


class DenseStage(nn.Module):
    """Backbone + FPN + RPN head. Tensor[B, 3, H, W] (normalised, H and W multiples of 32) ->
    (RoI features P2..P5: 4 x Tensor[B, C, H/s, W/s], objectness: L x Tensor[B, A, h, w],
    deltas: L x Tensor[B, 4A, h, w]) flattened into one tuple, in that order (L = 5 with P6)."""

    def __init__(self, backbone: nn.Module, rpn_head: nn.Module):
        super().__init__()
        self.backbone, self.rpn_head = backbone, rpn_head

    def forward(self, batch: Tensor) -> tuple[Tensor, ...]:
        named = self.backbone(batch)
        logits, deltas = self.rpn_head(list(named.values()))
        # RoIs are pooled from the FPN levels P2-P5 only; "pool" (P6) exists for the RPN.
        roi_features = [f for name, f in named.items() if name != "pool"]
        return (*roi_features, *logits, *deltas)


class BoxStage(nn.Module):
    """Tensor[R, C, 7, 7] -> (class logits Tensor[R, K], box deltas Tensor[R, 4K])."""

    def __init__(self, box_head: nn.Module, box_predictor: nn.Module):
        super().__init__()
        self.box_head, self.box_predictor = box_head, box_predictor

    def forward(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        return self.box_predictor(self.box_head(pooled))


class MaskStage(nn.Module):
    """Tensor[N, C, 14, 14] -> mask logits Tensor[N, K, 28, 28]."""

    def __init__(self, mask_head: nn.Module, mask_predictor: nn.Module):
        super().__init__()
        self.mask_head, self.mask_predictor = mask_head, mask_predictor

    def forward(self, pooled: Tensor) -> Tensor:
        return self.mask_predictor(self.mask_head(pooled))


DenseFn = Callable[[Tensor], tuple[Tensor, ...]]


class Detector:
    """Preprocess -> dense stage -> proposals -> box stage -> NMS -> mask stage -> rescale.

    config.numerics picks whose inference conventions the glue follows (ProposalFilter, RoIHeads,
    the rescale in `detect`, the paste mode of the results): "torchvision" or "detectron2"
    (detector_postprocess: boxes scaled, clipped to the image, empty ones dropped). The input
    transform is the policy's (InputPolicy.resize)."""

    def __init__(self, dense: DenseFn, box, mask, cell_anchors: list[Tensor], config: ArchConfig,
                 policy: InputPolicy, rpn: RPNParams | None = None, detection: DetectionParams | None = None):
        self.dense = dense
        self.config = config
        self.policy = policy
        self.num_rpn_levels = len(cell_anchors)
        self.proposals = ProposalFilter(cell_anchors, rpn or RPNParams(), config.numerics)
        self.heads = RoIHeads(box, mask, detection or DetectionParams(), config.box_pool_size, config.mask_pool_size,
                              config.numerics)

    @property
    def detection_params(self) -> DetectionParams:
        return self.heads.params

    @detection_params.setter
    def detection_params(self, params: DetectionParams) -> None:
        self.heads.params = params

    def set_score_threshold(self, score_thresh: float) -> None:
        self.heads.params = replace(self.heads.params, score_thresh=score_thresh)

    def set_proposals(self, proposals: int) -> None:
        """Keep `proposals` RPN proposals per image (post-NMS; pre-NMS per level scaled with it:
        RPNParams.with_proposals)."""
        self.proposals.params = self.proposals.params.with_proposals(proposals)

    def run(self, batch: Tensor, image_sizes: list, spatial_scales: list[float] | None = None):
        """batch: Tensor[B, 3, H, W] normalised, padded to 32; image_sizes: resized (h, w) per image
        (tuples, or Tensor[2] in a traced graph); spatial_scales: RoIAlign's 1 / stride per FPN
        level (default: inferred as torchvision does).

        Returns per image (boxes, scores, labels, mask_probs) in resized-image coordinates. This is
        the one detector glue: backends run it with their stages, maskrt.tensorrt.graph traces it.
        """
        outputs = self.dense(batch)
        n = self.num_rpn_levels
        features, logits, deltas = list(outputs[:-2 * n]), list(outputs[-2 * n:-n]), list(outputs[-n:])
        proposals = self.proposals(logits, deltas, (batch.shape[-2], batch.shape[-1]), image_sizes)
        return self.heads(features, proposals, image_sizes, spatial_scales)

    @torch.inference_mode()
    def detect(self, images: list[Tensor]) -> list[RawDetections]:
        """images: list of Tensor[3, H, W] float in [0, 1]. Boxes come back in input pixels."""
        batch, sizes = preprocess(images, self.policy)
        results = []
        for img, size, (boxes, scores, labels, masks) in zip(images, sizes, self.run(batch, sizes)):
            original = (int(img.shape[-2]), int(img.shape[-1]))
            results.append(self.to_original(boxes, scores, labels, masks, size, original))
        return results

    def to_original(self, boxes: Tensor, scores: Tensor, labels: Tensor, masks: Tensor, size: tuple[int, int],
                    original: tuple[int, int], instances=None) -> RawDetections:
        """One image's detections in resized-image pixels (`size`) -> RawDetections in the original
        image's pixels, as the model's numerics rescale them."""
        if self.config.numerics == "detectron2":
            return drop_empty(RawDetections(detectron2_rescale(boxes, size, original), scores, labels, masks, original,
                                            instances, paste_mode="detectron2"))
        return RawDetections(scale_boxes(boxes, size, original), scores, labels, masks, original, instances)


class MaskRCNN(nn.Module):
    """Inference-only Mask R-CNN in eager PyTorch, built from a torchvision MaskRCNN's submodules."""

    def __init__(self, tv_model: nn.Module, config: ArchConfig, policy: InputPolicy | None = None,
                 rpn: RPNParams | None = None, detection: DetectionParams | None = None):
        super().__init__()
        self.config = config
        self.dense = DenseStage(tv_model.backbone, tv_model.rpn.head)
        rh = tv_model.roi_heads
        self.box = BoxStage(rh.box_head, rh.box_predictor)
        self.mask = MaskStage(rh.mask_head, rh.mask_predictor)
        self.cell_anchors = cell_anchors(config.numerics)
        self.detector = Detector(self.dense, self.box, self.mask, self.cell_anchors, config,
                                 policy or InputPolicy(), rpn, detection)
        self.eval()

    @property
    def policy(self) -> InputPolicy:
        return self.detector.policy

    def forward(self, batch: Tensor, image_sizes: list[tuple[int, int]]):
        return self.detector.run(batch, image_sizes)

    def detect(self, images: list[Tensor]) -> list[RawDetections]:
        return self.detector.detect(images)
