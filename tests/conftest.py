"""Shared fixtures: seeded checkpoints built with torchvision's own constructors (the oracle)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torchvision.models import resnet18
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops.misc import FrozenBatchNorm2d

torch.set_num_threads(int(os.environ.get("MASKRT_TEST_THREADS", "2")))


@pytest.fixture(scope="session", autouse=True)
def engine_cache(tmp_path_factory):
    """Engines built from checkpoints on first use are cached in a per-session folder, not ~/.cache."""
    path = tmp_path_factory.mktemp("engine_cache")
    os.environ["MASKRT_CACHE_DIR"] = str(path)
    return path

SMALL_CLASSES = ["circle", "square", "triangle", "star"]


def small_torchvision_maskrcnn(num_classes: int = 5, fpn_channels: int = 64, seed: int = 0, **kwargs) -> MaskRCNN:
    """A ResNet-18-FPN Mask R-CNN with narrow heads, seeded, built only from torchvision parts."""
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
    # FrozenBatchNorm2d starts as identity; give it seeded statistics so it is really exercised.
    for module in model.modules():
        if isinstance(module, FrozenBatchNorm2d):
            n = module.weight.numel()
            module.weight.copy_(1 + 0.1 * torch.randn(n))
            module.bias.copy_(0.1 * torch.randn(n))
            module.running_mean.copy_(0.1 * torch.randn(n))
            module.running_var.copy_(1 + 0.1 * torch.rand(n))
    return model.eval()


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> str:
    """Path of a seeded small model saved as safetensors with class names and a 320/512 input policy."""
    from maskrt.model import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "small.safetensors"
    model = small_torchvision_maskrcnn()
    save_checkpoint(path, model.state_dict(), classes=SMALL_CLASSES, min_size=320, max_size=512)
    return str(path)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def random_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A uint8 RGB test image: smooth blobs over noise, so features are not pure noise."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = rng.integers(0, 60, size=(height, width, 3)).astype(np.float32)
    for _ in range(4):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(0.1, 0.4) * max(height, width)
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
        img[blob] += rng.uniform(60, 190, size=3)
    return img.clip(0, 255).astype(np.uint8)
