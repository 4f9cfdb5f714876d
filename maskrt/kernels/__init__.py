"""The three data-dependent ops of Mask R-CNN behind one dispatch.

- `roi_align(features, rois, spatial_scales, output_size, sampling_ratio, aligned)`:
  multi-level RoIAlign over FPN levels -> Tensor[R, C, S, S]
- `nms(boxes, scores, classes, iou_threshold, max_output)`: batched NMS -> Tensor[K] int64
- `paste(masks, boxes, height, width, threshold)`: masks into the image -> Tensor[N, H, W] bool

Each op lives in its own folder with a `reference` (torchvision) implementation.
"""

from __future__ import annotations

from .dispatch import available, current, get, register, set_implementation, use


def roi_align(*args, impl: str | None = None, **kwargs):
    """Multi-level RoIAlign; see `maskrt.kernels.roi_align.reference.roi_align`."""
    return get("roi_align", impl)(*args, **kwargs)


def nms(*args, impl: str | None = None, **kwargs):
    """Batched NMS; see `maskrt.kernels.nms.reference.nms`."""
    return get("nms", impl)(*args, **kwargs)


def paste(*args, impl: str | None = None, **kwargs):
    """Mask paste; see `maskrt.kernels.paste.reference.paste`."""
    return get("paste", impl)(*args, **kwargs)


__all__ = ["available", "current", "get", "nms", "paste", "register", "roi_align", "set_implementation", "use"]
