"""The roi_align op's warm-up calls: one per Triton kernel configuration the model launches."""

from __future__ import annotations

import torch

from ..model_sizes import CHANNELS, HEIGHT, WIDTH, random_boxes


def warm_up_calls(device, small: bool, dtype: torch.dtype = torch.float32) -> None:
    """The box head's S = 7 over 1000 proposals and the mask head's S = 14 over 100 detections, on
    P2-P5 of an 800 x 1088 image with 256 channels (small: 3 RoIs on 64 x 96 maps of 8 channels)."""
    from .triton import roi_align

    h, w, c = (64, 96, 8) if small else (HEIGHT, WIDTH, CHANNELS)
    features = [torch.randn(1, c, h // s, w // s, device=device).to(dtype) for s in (4, 8, 16, 32)]
    for size, n in ((7, 3 if small else 1000), (14, 3 if small else 100)):
        rois = torch.cat([torch.zeros(n, 1, device=device), random_boxes(n, h, w, device)], 1)
        roi_align(features, rois, [1 / 4, 1 / 8, 1 / 16, 1 / 32], size, 2, False)
