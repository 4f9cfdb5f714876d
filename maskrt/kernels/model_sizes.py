"""The sizes of a model-sized call (R50-FPN on an 800 x 1088 image) and random boxes for the warm-up calls."""

from __future__ import annotations

import torch

from ._triton import device_values

HEIGHT, WIDTH, CHANNELS = 800, 1088, 256
MASK = 28  # mask head output size


def random_boxes(n: int, height: int, width: int, device) -> torch.Tensor:
    """Tensor[n, 4] float32 xyxy boxes inside a height x width image."""
    xy = torch.rand(n, 2, device=device) * device_values([width * 0.8, height * 0.8], torch.float32, device)
    wh = 8 + torch.rand(n, 2, device=device) * device_values([width * 0.3, height * 0.3], torch.float32, device)
    return torch.cat([xy, xy + wh], 1)
