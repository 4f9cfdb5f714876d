"""The paste op's warm-up calls: one per Triton kernel configuration the model launches."""

from __future__ import annotations

import torch

from ..model_sizes import HEIGHT, MASK, WIDTH, random_boxes


def warm_up_calls(device, small: bool, dtype: torch.dtype = torch.float32) -> None:
    """Plain paste and the fused paste of 100 masks on an 800 x 1088 image (small: 3 on 40 x 56), in
    both modes (torchvision's paste and detectron2's are different kernels)."""
    from . import triton as paste

    n, h, w = (3, 40, 56) if small else (100, HEIGHT, WIDTH)
    masks, boxes = torch.rand(n, MASK, MASK, device=device), random_boxes(n, h, w, device)
    for mode in ("torchvision", "detectron2"):
        paste.paste(masks, boxes, h, w, 0.5, mode)
        paste.paste_id_map(masks, boxes, h, w, 0.5, torch.rand(n, device=device), mode)
