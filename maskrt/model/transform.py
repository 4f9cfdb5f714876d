"""Input transform with torchvision's GeneralizedRCNNTransform numerics (inference only).

Order: normalise ((x - mean) / std on [0, 1] floats), resize bilinearly (align_corners=False)
by scale = min(min_size / min(h, w), max_size / max(h, w)) with output size floor(h * scale),
at least 1 (torchvision fails on images so thin that a side would round to 0 pixels, e.g.
2 x 5000; every other size is computed exactly as torchvision does), then zero-pad (in
normalised space) at the bottom/right to a multiple of 32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..kernels._triton import device_values

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIZE_DIVISIBLE = 32


@dataclass(frozen=True)
class InputPolicy:
    """How images are sized and normalised before the network."""

    min_size: int = 800
    max_size: int = 1333
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) after resizing, as torch.nn.functional.interpolate computes it, each at least 1."""
        scale = min(self.min_size / min(height, width), self.max_size / max(height, width))
        return max(1, math.floor(height * scale)), max(1, math.floor(width * scale))


def normalize_and_resize(image: Tensor, policy: InputPolicy) -> Tensor:
    """Tensor[3, H, W] float in [0, 1] -> Tensor[3, h, w] normalised and resized."""
    mean = device_values(policy.mean, image.dtype, image.device)  # no host-to-device copy: no sync on a GPU
    std = device_values(policy.std, image.dtype, image.device)
    image = (image - mean[:, None, None]) / std[:, None, None]
    size = policy.resized_size(image.shape[-2], image.shape[-1])
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]


def batch_images(images: list[Tensor]) -> Tensor:
    """Zero-pad Tensor[3, h_i, w_i] images to one Tensor[B, 3, H, W], H and W multiples of 32."""
    height = max(img.shape[-2] for img in images)
    width = max(img.shape[-1] for img in images)
    height = int(math.ceil(height / SIZE_DIVISIBLE) * SIZE_DIVISIBLE)
    width = int(math.ceil(width / SIZE_DIVISIBLE) * SIZE_DIVISIBLE)
    batch = images[0].new_zeros((len(images), 3, height, width))
    for i, img in enumerate(images):
        batch[i, :, : img.shape[-2], : img.shape[-1]].copy_(img)
    return batch


def preprocess(images: list[Tensor], policy: InputPolicy) -> tuple[Tensor, list[tuple[int, int]]]:
    """Float images Tensor[3, H, W] in [0, 1] -> (padded batch Tensor[B, 3, H', W'], resized sizes)."""
    resized = [normalize_and_resize(img, policy) for img in images]
    return batch_images(resized), [(int(r.shape[-2]), int(r.shape[-1])) for r in resized]
