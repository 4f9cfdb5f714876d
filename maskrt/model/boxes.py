"""Box arithmetic shared by the RPN and the box head, with torchvision's exact numerics."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..kernels._triton import device_values

BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def decode_boxes(deltas: Tensor, reference: Tensor, weights: tuple[float, float, float, float]) -> Tensor:
    """Apply regression deltas to reference boxes (torchvision BoxCoder.decode_single).

    deltas: Tensor[R, 4 * K] (dx, dy, dw, dh per class); reference: Tensor[R, 4] xyxy.
    Widths are x2 - x1 (no +1). dw, dh are clamped to log(1000 / 16) before exp.
    Returns Tensor[R, K, 4] xyxy.
    """
    reference = reference.to(deltas.dtype)
    widths = reference[:, 2] - reference[:, 0]
    heights = reference[:, 3] - reference[:, 1]
    ctr_x = reference[:, 0] + 0.5 * widths
    ctr_y = reference[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = torch.clamp(deltas[:, 2::4] / ww, max=BBOX_XFORM_CLIP)
    dh = torch.clamp(deltas[:, 3::4] / wh, max=BBOX_XFORM_CLIP)
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    half_w = 0.5 * (torch.exp(dw) * widths[:, None])
    half_h = 0.5 * (torch.exp(dh) * heights[:, None])
    return torch.stack((pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), dim=2)


def clip_boxes(boxes: Tensor, image_hw: tuple[int, int] | Tensor) -> Tensor:
    """Clamp Tensor[..., 4] xyxy to [0, width] x [0, height]; image_hw: (height, width), ints or a
    Tensor[2] (a traced graph's dynamic size). min(max(v, 0), size), as torchvision's clamp."""
    if isinstance(image_hw, Tensor):
        size = image_hw.to(device=boxes.device, dtype=boxes.dtype)
    else:  # made on the device: torch.as_tensor(ints, device=cuda) is an upload, a sync on a GPU
        size = device_values([int(v) for v in image_hw], boxes.dtype, boxes.device)
    x = torch.minimum(boxes[..., 0::2].clamp(min=0), size[1])
    y = torch.minimum(boxes[..., 1::2].clamp(min=0), size[0])
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def keep_min_size(boxes: Tensor, min_size: float, strict: bool = False) -> Tensor:
    """Indices of Tensor[N, 4] boxes whose width and height are both >= min_size (strict: > min_size,
    detectron2's Boxes.nonempty)."""
    ws = boxes[:, 2] - boxes[:, 0]
    hs = boxes[:, 3] - boxes[:, 1]
    if strict:
        return torch.where((ws > min_size) & (hs > min_size))[0]
    return torch.where((ws >= min_size) & (hs >= min_size))[0]


def detectron2_rescale(boxes: Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> Tensor:
    """detectron2's detector_postprocess of Tensor[N, 4] boxes from the resized image (h, w)
    `from_size` to the original `to_size`: x * float32(W / w), y * float32(H / h) (the ratio of
    Python floats, as Boxes.scale multiplies by it), clipped to the image. detectron2 then drops
    the boxes that are empty (`keep_min_size(boxes, 0, strict=True)` keeps the others)."""
    ratio_w, ratio_h = device_values([to_size[1] / from_size[1], to_size[0] / from_size[0]], torch.float32,
                                     boxes.device)  # made on the device: an upload would be a sync on a GPU
    x1, y1, x2, y2 = boxes.unbind(1)
    return clip_boxes(torch.stack((x1 * ratio_w, y1 * ratio_h, x2 * ratio_w, y2 * ratio_h), dim=1), to_size)


def scale_boxes(boxes: Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> Tensor:
    """Rescale Tensor[N, 4] xyxy from an image of (h, w) `from_size` to `to_size` (float32 ratios)."""
    ratio_h = torch.tensor(to_size[0], dtype=torch.float32) / torch.tensor(from_size[0], dtype=torch.float32)
    ratio_w = torch.tensor(to_size[1], dtype=torch.float32) / torch.tensor(from_size[1], dtype=torch.float32)
    x1, y1, x2, y2 = boxes.unbind(1)
    return torch.stack((x1 * ratio_w, y1 * ratio_h, x2 * ratio_w, y2 * ratio_h), dim=1)
