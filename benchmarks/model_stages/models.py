"""Seeded models for the stage benchmarks, built only from torchvision's constructors.

- "small": the bundled model's size class, ResNet-18-FPN with 64 FPN channels and narrow heads
  (as tests/conftest.py's small_torchvision_maskrcnn), 5 classes, on a 320x320 image.
- "r50": torchvision's maskrcnn_resnet50_fpn (v1, 91 classes, random weights), 800x1088 image
  (kept at that size by the 800/1333 policy: both sides are multiples of 32, so no padding).

Detections use score threshold 0, so every image yields the full 100 detections: the worst case
for the mask head, paste and render, and the same count on every run whatever the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.models import resnet18
from torchvision.models.detection import MaskRCNN as TorchvisionMaskRCNN
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops.misc import FrozenBatchNorm2d

from maskrt.model import DetectionParams, InputPolicy, MaskRCNN, infer_config

DETECTIONS = DetectionParams(score_thresh=0.0, nms_thresh=0.5, detections_per_img=100)


@dataclass(frozen=True)
class Variant:
    name: str
    arch: str
    height: int
    width: int
    min_size: int
    max_size: int

    @property
    def group(self) -> str:
        return f"stages {self.arch} {self.height}x{self.width}"


SMALL = Variant("small", "r18-fpn64", 320, 320, 320, 512)
R50 = Variant("r50", "r50-fpn", 800, 1088, 800, 1333)


def seed_frozen_bn(model: torch.nn.Module) -> None:
    """FrozenBatchNorm2d starts as identity; seeded statistics make it do real work."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                n = module.weight.numel()
                module.weight.copy_(1 + 0.1 * torch.randn(n))
                module.bias.copy_(0.1 * torch.randn(n))
                module.running_mean.copy_(0.1 * torch.randn(n))
                module.running_var.copy_(1 + 0.1 * torch.rand(n))


def small_torchvision(num_classes: int = 5, fpn_channels: int = 64, seed: int = 0) -> TorchvisionMaskRCNN:
    torch.manual_seed(seed)
    body = resnet18(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = BackboneWithFPN(body, {f"layer{i}": str(i - 1) for i in range(1, 5)}, [64, 128, 256, 512],
                               fpn_channels)
    model = TorchvisionMaskRCNN(
        backbone, num_classes=None,
        box_head=TwoMLPHead(fpn_channels * 49, 128), box_predictor=FastRCNNPredictor(128, num_classes),
        mask_head=MaskRCNNHeads(fpn_channels, [fpn_channels] * 2, 1),
        mask_predictor=MaskRCNNPredictor(fpn_channels, fpn_channels, num_classes),
    )
    seed_frozen_bn(model)
    return model.eval()


def r50_torchvision(seed: int = 0) -> TorchvisionMaskRCNN:
    torch.manual_seed(seed)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    seed_frozen_bn(model)
    return model.eval()


def build(variant: Variant) -> MaskRCNN:
    """maskrt's eager MaskRCNN for the variant, with the variant's input policy."""
    tv = small_torchvision() if variant is SMALL else r50_torchvision()
    config = infer_config(tv.state_dict())
    policy = InputPolicy(min_size=variant.min_size, max_size=variant.max_size)
    return MaskRCNN(tv, config, policy, detection=DETECTIONS)
