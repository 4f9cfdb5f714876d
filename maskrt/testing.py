"""Seeded Mask R-CNN models built only from torchvision's own constructors, for tests, benchmarks
and users checking an install without downloadable weights (the oracle side of parity checks).

Random weights detect nothing meaningful; they exercise every op with realistic shapes.
"""

from __future__ import annotations

import torch
from torchvision.models import resnet18
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops.misc import FrozenBatchNorm2d


def seed_frozen_bn(model: torch.nn.Module) -> None:
    """FrozenBatchNorm2d starts as identity; seeded statistics (from torch's global generator)
    make it do real work."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                n = module.weight.numel()
                module.weight.copy_(1 + 0.1 * torch.randn(n))
                module.bias.copy_(0.1 * torch.randn(n))
                module.running_mean.copy_(0.1 * torch.randn(n))
                module.running_var.copy_(1 + 0.1 * torch.rand(n))


def small_torchvision_maskrcnn(num_classes: int = 5, fpn_channels: int = 64, seed: int = 0, **kwargs) -> MaskRCNN:
    """torchvision MaskRCNN, ResNet-18-FPN (fpn_channels wide) with narrow heads (128-wide box
    MLP, two mask convs), seeded, in eval mode. kwargs go to torchvision's MaskRCNN (sizes,
    thresholds)."""
    torch.manual_seed(seed)
    body = resnet18(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = BackboneWithFPN(body, {f"layer{i}": str(i - 1) for i in range(1, 5)}, [64, 128, 256, 512],
                               fpn_channels)
    model = MaskRCNN(
        backbone,
        num_classes=None,
        box_head=TwoMLPHead(fpn_channels * 49, 128),
        box_predictor=FastRCNNPredictor(128, num_classes),
        mask_head=MaskRCNNHeads(fpn_channels, [fpn_channels] * 2, 1),
        mask_predictor=MaskRCNNPredictor(fpn_channels, fpn_channels, num_classes),
        **kwargs,
    )
    seed_frozen_bn(model)
    return model.eval()


def r50_torchvision_maskrcnn(seed: int = 0, **kwargs) -> MaskRCNN:
    """torchvision's maskrcnn_resnet50_fpn (v1, 91 classes), seeded random weights, eval mode."""
    torch.manual_seed(seed)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91, **kwargs)
    seed_frozen_bn(model)
    return model.eval()
