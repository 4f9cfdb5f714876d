"""The sizes of a model-sized call (R50-FPN on an 800 x 1088 image) and random boxes for the warm-up calls."""

from __future__ import annotations

import torch

HEIGHT, WIDTH, CHANNELS = 800, 1088, 256
MASK = 28  # mask head output size


def random_boxes(n: int, height: int, width: int, device) -> torch.Tensor:
    """Tensor[n, 4] float32 xyxy boxes inside a height x width image."""
    xy = torch.rand(n, 2, device=device) * torch.tensor([width * 0.8, height * 0.8], device=device)
    wh = 8 + torch.rand(n, 2, device=device) * torch.tensor([width * 0.3, height * 0.3], device=device)
    return torch.cat([xy, xy + wh], 1)
