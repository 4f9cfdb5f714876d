"""The nms op's warm-up calls: one per Triton kernel configuration the model launches."""

from __future__ import annotations

import torch

from ..model_sizes import HEIGHT, WIDTH, random_boxes


def warm_up_calls(device, small: bool, dtype: torch.dtype = torch.float32) -> None:
    """The dense path (RPN-sized inputs) and the per-class path (e.g. 1000 RoIs x 80 classes)."""
    from .common import trick_limit
    from .triton import nms

    dense_max = trick_limit(torch.device(device)) // 4
    for n in ((37, dense_max + 1) if small else (4000, 80_000)):
        boxes = random_boxes(n, HEIGHT, WIDTH, device)
        nms(boxes, torch.rand(n, device=device), torch.randint(0, 80, (n,), device=device), 0.5, 100)
