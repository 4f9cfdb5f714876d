"""Triton mask paste: one program per (instance, block of image rows), all geometry on the device.

The kernel computes each box's integer geometry itself (torchvision's expand_boxes in float32
and truncation, as common.box_geometry), resizes the mask with torchvision's bilinear arithmetic
(align_corners=False; scale = in / out with IEEE division; fused multiply-adds as torch's CPU
kernel uses them for outputs with h + w > 128, see cpu.py) and thresholds. On the GPU the fma is
tl.fma and nothing else is contracted (launch_options); under the interpreter the fma is
emulated in float64. Boxes whose resized mask has h + w <= 128 go through a different code path
inside torch; for those the result can differ from the reference in the last bit of the
probability, i.e. a pixel whose probability is within 1 ulp of the threshold may flip.

`paste` writes every pixel of a bool Tensor[N, H, W] in one launch and reads nothing back on
the host (the PasteMasks plugin's kernel, ahead of time). `paste_id_map` writes the
per-instance crops into one packed buffer and takes, per pixel, the atomic max of a priority
(N - 1 - score rank), so the id map needs no ordering between programs; its one host read is
the packed buffer's length (data dependent). Integer arguments are not specialized
(do_not_specialize): a new image size is not a new compile.

mode "detectron2" launches _d2_kernels.d2_paste_kernel instead (same arguments and writes):
detectron2's grid_sample paste with torch's CPU rounding (see there), foreground >= threshold.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .. import _triton
from .._triton import check_device, interpreted, launch_options, triton_modules
from .common import (PastedInstances, background_value, box_geometry, check_inputs, check_mode, crop_offsets,
                     detectron2_regions, paint_priority)

BLOCK_H = 16
BLOCK_W = 64


def paste(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5,
          mode: str = "torchvision") -> Tensor:
    """Paste per-box mask probabilities into the image on the tensors' device -> Tensor[N, H, W] bool."""
    check_inputs(masks, boxes, height, width)
    check_mode(mode, threshold)
    n = masks.shape[0]
    if n == 0 or height == 0 or width == 0:
        return torch.full((n, height, width), background_value(threshold), dtype=torch.bool, device=masks.device)
    out = torch.empty((n, height, width), dtype=torch.bool, device=masks.device)
    _launch(masks, boxes, height, width, threshold, mode, out=out)
    return out


def paste_id_map(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5,
                 scores: Tensor | None = None, mode: str = "torchvision") -> PastedInstances:
    """Fused paste (see cpu.paste_id_map): id map Tensor[H, W] int32 (-1 background) + packed crops,
    all on the masks' device."""
    check_inputs(masks, boxes, height, width)
    check_mode(mode, threshold)
    if background_value(threshold):
        raise ValueError(f"paste_id_map needs threshold >= 0, got {threshold}")
    n, dev = masks.shape[0], masks.device
    if mode == "detectron2":
        region = detectron2_regions(boxes.to(dev), height, width)
    else:
        _, region = box_geometry(boxes.to(dev), masks.shape[-1], height, width)
    offsets = crop_offsets(region)
    (total,) = _triton.host_read(offsets[-1:], [n * height * width], "packed crop length")
    packed = torch.empty(total, dtype=torch.bool, device=dev)
    keymap = torch.full((height, width), -1, dtype=torch.int32, device=dev)
    rank = paint_priority(None if scores is None else scores.to(dev), n, dev)
    if n > 0 and height > 0 and width > 0:
        _launch(masks, boxes, height, width, threshold, mode, packed=packed, offsets=offsets, keymap=keymap,
                priority=(n - 1 - rank).to(torch.int32), regions=region)
    by_rank = torch.argsort(rank).to(torch.int32)
    id_map = torch.where(keymap >= 0, by_rank[(n - 1 - keymap.clamp(min=0)).long()], -1) if n else keymap
    return PastedInstances(id_map.to(torch.int32), region, packed, offsets)


def threshold_bits(threshold: float) -> int:
    """The float32 threshold's bit pattern as a signed int32 (the kernel bitcasts it back)."""
    return int(np.float32(threshold).view(np.int32))


def _launch(masks, boxes, height, width, threshold, mode, out=None, packed=None, offsets=None, keymap=None,
            priority=None, regions=None):
    dev = masks.device
    check_device(masks)
    triton, _ = triton_modules()
    if mode == "detectron2":
        from ._d2_kernels import d2_paste_kernel as kernel
    else:
        from ._kernels import paste_kernel as kernel
    fused = out is None
    grid = (masks.shape[0], triton.cdiv(height, BLOCK_H))
    kernel[grid](
        masks.contiguous(), boxes.to(device=dev, dtype=torch.float32).contiguous(), None,
        regions.contiguous() if fused else None, offsets if fused else None, priority if fused else None,
        masks.shape[0], masks.shape[-1], height, width, threshold_bits(threshold),
        None if fused else out.view(torch.uint8), packed.view(torch.uint8) if fused else None,
        keymap if fused else None,
        FUSED=fused, EMULATE=interpreted(), BLOCK_H=BLOCK_H, BLOCK_W=BLOCK_W, **launch_options())
