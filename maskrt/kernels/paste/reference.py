"""Reference mask paste: torchvision's paste_masks_in_image followed by a threshold."""

from __future__ import annotations

from torch import Tensor
from torchvision.models.detection.roi_heads import paste_masks_in_image


def paste(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5) -> Tensor:
    """Paste per-box mask probabilities into the image.

    masks: Tensor[N, M, M] probabilities; boxes: Tensor[N, 4] xyxy in image pixels.
    torchvision numerics: the mask is padded by one pixel (M -> M + 2) and the box scaled by
    (M + 2) / M about its centre, truncated to int64; the mask is resized bilinearly
    (align_corners=False, half-pixel centres) to (y2 - y1 + 1, x2 - x1 + 1) and copied in.
    Returns Tensor[N, height, width] bool: pasted probability > threshold.
    """
    pasted = paste_masks_in_image(masks[:, None].float(), boxes.float(), (height, width), padding=1)
    return pasted[:, 0] > threshold
