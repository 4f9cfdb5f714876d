"""The three data-dependent ops of Mask R-CNN behind one dispatch.

- `roi_align(features, rois, spatial_scales, output_size, sampling_ratio, aligned)`:
  multi-level RoIAlign over FPN levels -> Tensor[R, C, S, S]
- `nms(boxes, scores, classes, iou_threshold, max_output)`: batched NMS -> Tensor[K] int64
- `paste(masks, boxes, height, width, threshold)`: masks into the image -> Tensor[N, H, W] bool

Each op lives in its own folder (roi_align/, nms/, paste/) with `reference` (torchvision, the
ground truth), `cpu` (fast vectorised torch) and `triton` implementations; `use("cpu")` /
`set_implementation` / MASKRT_KERNELS select one for all three. `paste_id_map` is the fused
paste (instance-id map + cropped masks, see paste/README.md). The ops are also registered as
torch custom ops `torch.ops.maskrt.{roi_align, nms, paste, paste_id_map}` (CPU kernel = cpu,
CUDA kernel = triton, with fake implementations) by `maskrt.kernels.library`.
"""

from __future__ import annotations

import torch

from . import library  # noqa: F401  (registers torch.ops.maskrt.*)
from .dispatch import available, current, get, register, resolve, set_implementation, use
from .paste.common import PastedInstances
from .roi_align.cpu import FeaturePyramid, TableMemory
from .roi_align.cpu import roi_align as _cpu_roi_align


def roi_align(*args, impl: str | None = None, out: torch.Tensor | None = None, **kwargs):
    """Multi-level RoIAlign; see `maskrt.kernels.roi_align.reference.roi_align`. In a traced graph
    it is torch.ops.maskrt.roi_align (exported as a plugin node: maskrt.tensorrt.onnx_symbolics).

    out: optional Tensor[R, C, S, S] to write the result into and return. The `cpu` kernel writes
    a channels_last `out` in place (no fresh allocation: the caller's reused buffer); the others
    compute as usual and copy into it. Not part of a traced graph (ignored while tracing)."""
    if torch.jit.is_tracing():
        return torch.ops.maskrt.roi_align(*args, **kwargs)
    if out is None:
        return get("roi_align", impl)(*args, **kwargs)
    fn = resolve("roi_align", impl, args, kwargs)
    if fn is _cpu_roi_align:
        return fn(*args, out=out, **kwargs)
    return out.copy_(fn(*args, **kwargs))


def nms(*args, impl: str | None = None, **kwargs):
    """Batched NMS; see `maskrt.kernels.nms.reference.nms`. In a traced graph it is
    torch.ops.maskrt.nms (exported as a plugin node: maskrt.tensorrt.onnx_symbolics)."""
    if torch.jit.is_tracing():
        return torch.ops.maskrt.nms(*args, **kwargs)
    return get("nms", impl)(*args, **kwargs)


def paste(*args, impl: str | None = None, **kwargs):
    """Mask paste; see `maskrt.kernels.paste.reference.paste`."""
    return get("paste", impl)(*args, **kwargs)


def paste_id_map(*args, impl: str | None = None, **kwargs) -> PastedInstances:
    """Fused paste (instance-id map + per-instance crops); see `maskrt.kernels.paste.cpu.paste_id_map`.

    The `reference` selection uses the cpu implementation (checked against paste() in tests).
    """
    impl = impl or current()
    masks = args[0] if args else kwargs["masks"]
    if impl == "triton" or (impl == "auto" and masks.is_cuda):
        from .paste.triton import paste_id_map as fn
    else:
        from .paste.cpu import paste_id_map as fn
    return fn(*args, **kwargs)


__all__ = ["FeaturePyramid", "PastedInstances", "TableMemory", "available", "current", "get", "nms", "paste",
           "paste_id_map", "register", "resolve", "roi_align", "set_implementation", "use"]
