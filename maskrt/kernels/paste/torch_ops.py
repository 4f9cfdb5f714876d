"""torch.ops.maskrt.paste and .paste_id_map (the fused paste): CPU kernel = cpu, CUDA kernel = triton, fake."""

from __future__ import annotations

import torch
from torch import Tensor

from . import cpu as _cpu


@torch.library.custom_op("maskrt::paste", mutates_args=())
def paste(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5,
          mode: str = "torchvision") -> Tensor:
    """Mask paste -> Tensor[N, H, W] bool (see paste/README.md)."""
    return _cpu.paste(masks, boxes, height, width, threshold, mode)


@paste.register_kernel("cuda")
def _paste_cuda(masks, boxes, height, width, threshold=0.5, mode="torchvision"):
    from .triton import paste as fn

    return fn(masks, boxes, height, width, threshold, mode)


@paste.register_fake
def _paste_fake(masks, boxes, height, width, threshold=0.5, mode="torchvision"):
    return masks.new_empty((masks.shape[0], height, width), dtype=torch.bool)


@torch.library.custom_op("maskrt::paste_id_map", mutates_args=())
def paste_id_map(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5,
                 scores: Tensor | None = None, mode: str = "torchvision") -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fused paste -> (id_map [H, W] int32, regions [N, 4] int64, packed [P] bool, offsets [N + 1] int64)."""
    r = _cpu.paste_id_map(masks, boxes, height, width, threshold, scores, mode)
    return r.id_map, r.regions.clone(), r.packed, r.offsets


@paste_id_map.register_kernel("cuda")
def _paste_id_map_cuda(masks, boxes, height, width, threshold=0.5, scores=None, mode="torchvision"):
    from .triton import paste_id_map as fn

    r = fn(masks, boxes, height, width, threshold, scores, mode)
    dev = masks.device
    return r.id_map, r.regions.to(dev), r.packed, r.offsets.to(dev)


@paste_id_map.register_fake
def _paste_id_map_fake(masks, boxes, height, width, threshold=0.5, scores=None, mode="torchvision"):
    n = masks.shape[0]
    packed = masks.new_empty((torch.library.get_ctx().new_dynamic_size(),), dtype=torch.bool)
    return (masks.new_empty((height, width), dtype=torch.int32), masks.new_empty((n, 4), dtype=torch.int64),
            packed, masks.new_empty((n + 1,), dtype=torch.int64))
