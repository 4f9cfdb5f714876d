"""Reference mask paste: torchvision's paste_masks_in_image followed by a threshold, or
detectron2's paste (layers/mask_ops.py) over the whole image."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.models.detection.roi_heads import paste_masks_in_image

from .common import check_mode, detectron2_probs


def paste(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5,
          mode: str = "torchvision") -> Tensor:
    """Paste per-box mask probabilities into the image -> Tensor[N, height, width] bool.

    masks: Tensor[N, M, M] probabilities; boxes: Tensor[N, 4] xyxy in image pixels.
    mode "torchvision": the mask is padded by one pixel (M -> M + 2) and the box scaled by
    (M + 2) / M about its centre, truncated to int64; the mask is resized bilinearly
    (align_corners=False, half-pixel centres) to (y2 - y1 + 1, x2 - x1 + 1) and copied in;
    foreground = pasted probability > threshold.
    mode "detectron2": every pixel centre of the image samples the mask at its position in the
    float box (`common.detectron2_probs`, detectron2's grid_sample paste without its region
    restriction, as its GPU path); foreground = probability >= threshold (threshold > 0). Boxes
    with a non-finite coordinate, x2 <= x1 or y2 <= y1 give empty masks.
    """
    check_mode(mode, threshold)
    if mode == "detectron2":
        out = torch.zeros((masks.shape[0], height, width), dtype=torch.bool)
        rows, cols = torch.arange(height), torch.arange(width)
        for i, box in enumerate(boxes.float()):
            if bool(torch.isfinite(box).all()) and box[2] > box[0] and box[3] > box[1]:
                out[i] = detectron2_probs(masks[i], box, rows, cols) >= torch.tensor(threshold, dtype=torch.float32)
        return out
    pasted = paste_masks_in_image(masks[:, None].float(), boxes.float(), (height, width), padding=1)
    return pasted[:, 0] > threshold
