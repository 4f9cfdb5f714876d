"""Triton mask paste: one program per (instance, block of visible rows); only visible pixels are computed.

The host computes the integer geometry (common.geometry: torchvision's box expansion and
truncation) and pads the masks; the kernel resizes with torchvision's bilinear arithmetic
(align_corners=False, fused multiply-adds as torch's CPU kernel uses them for outputs with
h + w > 128, see cpu.py) and thresholds. On the GPU the fma is tl.fma; under the interpreter it
is emulated in float64. Boxes whose resized mask has h + w <= 128 go through a different code
path inside torch; for those the result can differ from the reference in the last bit of the
probability, i.e. a pixel whose probability is within 1 ulp of the threshold may flip.

`paste` writes a bool Tensor[N, H, W]; `paste_id_map` writes the per-instance crops into one
packed buffer and takes, per pixel, the atomic max of a priority (N - 1 - score rank), so the
id map needs no ordering between programs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._triton import check_device, interpreted, launch_options, triton_modules
from .common import PastedInstances, background_value, check_inputs, crop_offsets, geometry, paint_priority

BLOCK_H = 16
BLOCK_W = 64


def paste(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5) -> Tensor:
    """Paste per-box mask probabilities into the image on the tensors' device -> Tensor[N, H, W] bool."""
    check_inputs(masks, boxes, height, width)
    n = masks.shape[0]
    out = torch.full((n, height, width), background_value(threshold), dtype=torch.bool, device=masks.device)
    if n == 0 or height == 0 or width == 0:
        return out
    _launch(masks, boxes, height, width, threshold, out=out)
    return out


def paste_id_map(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5,
                 scores: Tensor | None = None) -> PastedInstances:
    """Fused paste (see cpu.paste_id_map): id map Tensor[H, W] int32 (-1 background) + packed crops."""
    check_inputs(masks, boxes, height, width)
    if background_value(threshold):
        raise ValueError(f"paste_id_map needs threshold >= 0, got {threshold}")
    n, dev = masks.shape[0], masks.device
    geo = geometry(masks, boxes, height, width)
    offsets = crop_offsets(geo.region)
    packed = torch.zeros(int(offsets[-1]), dtype=torch.bool, device=dev)
    keymap = torch.full((height, width), -1, dtype=torch.int32, device=dev)
    rank = paint_priority(scores, n)
    if n > 0 and height > 0 and width > 0:
        _launch(masks, boxes, height, width, threshold, packed=packed, offsets=offsets, keymap=keymap,
                priority=(n - 1 - rank).to(torch.int32), geo=geo)
    by_rank = torch.argsort(rank).to(torch.int32).to(dev)
    id_map = torch.where(keymap >= 0, by_rank[(n - 1 - keymap.clamp(min=0)).long()] if n else keymap, -1)
    return PastedInstances(id_map.to(torch.int32), geo.region, packed, offsets)


def _launch(masks, boxes, height, width, threshold, out=None, packed=None, offsets=None, keymap=None,
            priority=None, geo=None):
    check_device(masks)
    from . import _kernels

    triton, _ = triton_modules()
    dev = masks.device
    geo = geo or geometry(masks, boxes, height, width)
    table = torch.cat([geo.region, geo.box[:, :2], geo.out_hw], 1).to(device=dev, dtype=torch.int32).contiguous()
    visible_rows = (geo.region[:, 3] - geo.region[:, 1]).clamp(min=0)
    row_blocks = triton.cdiv(int(visible_rows.max()), BLOCK_H) if visible_rows.numel() else 0
    if row_blocks == 0:
        return
    fused = out is None
    dummy = torch.empty(1, dtype=torch.int32, device=dev)
    _kernels.paste_kernel[(masks.shape[0], row_blocks)](
        geo.padded.to(dev).contiguous(), table,
        dummy if fused else out.view(torch.uint8),
        packed.view(torch.uint8) if fused else dummy,
        offsets.to(dev) if fused else dummy, keymap if fused else dummy, priority.to(dev) if fused else dummy,
        height, width, geo.padded.shape[-1], float(threshold),
        FUSED=fused, EMULATE=interpreted(), BLOCK_H=BLOCK_H, BLOCK_W=BLOCK_W, **launch_options())
