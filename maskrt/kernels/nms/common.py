"""Input handling shared by the nms implementations.

NaN/inf policy: a row whose score is NaN or whose box has a NaN or +-inf coordinate is dropped
before NMS: it is never kept and never suppresses another box (torchvision would compare NaN
IoUs and keep such boxes in an unspecified order). Scores of +-inf are ordinary values.
Boxes are processed in float32 (fp16/bf16/integer inputs are widened; the result is indices
only), float64 boxes in float64 (torchvision's kernel computes their IoUs in double).
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_inputs(boxes: Tensor, scores: Tensor, classes: Tensor) -> None:
    """ValueError unless boxes is Tensor[N, 4] and scores and classes Tensor[N], classes finite."""
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"nms boxes must be Tensor[N, 4], got {tuple(boxes.shape)}")
    n = boxes.shape[0]
    if scores.shape != (n,) or classes.shape != (n,):
        raise ValueError(f"nms scores and classes must be Tensor[{n}], got {tuple(scores.shape)} and "
                         f"{tuple(classes.shape)}")
    if classes.is_floating_point() and not bool(torch.isfinite(classes).all()):
        raise ValueError("nms classes contain NaN or inf")


def class_offsets(classes: Tensor, max_coordinate: Tensor) -> Tensor:
    """Tensor[n]: classes.to(boxes) * (max_coordinate + 1), as batched_nms computes it (its `+
    torch.tensor(1).to(boxes)` adds the same 1 in the boxes' dtype; a Python 1 does it without a
    host-to-device copy, which on a GPU is a sync)."""
    return classes.to(max_coordinate.dtype) * (max_coordinate + 1)


def order_by_score(kept: Tensor, scores: Tensor) -> Tensor:
    """batched_nms's final ordering of per-class results: kept (ascending rows) by score, descending."""
    return kept.index_select(0, scores.index_select(0, kept).sort(descending=True)[1])


def float32_threshold(iou_threshold: float) -> float:
    """Largest float32 t with (x > t) == (x > iou_threshold as double) for every float32 x:
    torchvision compares the float IoU with a double threshold."""
    t = torch.tensor(iou_threshold, dtype=torch.float32)
    if float(t) > iou_threshold:
        t = torch.nextafter(t, torch.tensor(-float("inf")))
    return float(t)


# --- the same on the device, without host reads (the triton implementation) ------------------

def trick_limit(device: torch.device) -> int:
    """torchvision.ops.batched_nms's own switch, mirrored by every implementation so each keeps
    exactly the reference's set, including IoUs that round differently: one NMS over class-offset
    boxes (boxes + class * (max coordinate + 1)) for inputs of at most this many coordinates (4000
    on CPU, 100000 elsewhere), one NMS per class above.

    The trick keeps classes apart only when no coordinate is negative (torchvision then lets boxes
    of different classes suppress each other, a bug); such inputs, which the model never makes
    (its boxes are clipped to the image), take the per-class path, NMS's definition."""
    return 4000 if device.type == "cpu" else 100_000


def device_inputs(boxes: Tensor, scores: Tensor, classes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The cpu nms's inputs without dropping rows (no host read): (boxes Tensor[n, 4] float32, or float64 as
    given; scores Tensor[n] in that dtype; classes Tensor[n] int64; valid Tensor[n] bool, False
    for the rows the cpu nms drops). Float classes are checked on the host (the model's are int64)."""
    check_inputs(boxes, scores, classes)
    b = (boxes.float() if boxes.dtype != torch.float64 else boxes).contiguous()
    s = scores.to(b.dtype).contiguous()
    valid = torch.isfinite(b).all(1) & ~torch.isnan(s)
    return b, s, classes.to(torch.int64).contiguous(), valid


def device_trick(boxes: Tensor, valid: Tensor) -> Tensor:
    """Whether the valid rows take the coordinate trick (trick_limit) as a device bool Tensor[] (no host read)."""
    small = valid.sum() * 4 <= trick_limit(boxes.device)
    return small & ~((boxes < 0) & valid[:, None]).any()


def valid_offset_boxes(boxes: Tensor, classes: Tensor, valid: Tensor) -> Tensor:
    """batched_nms's class-offset boxes (class_offsets added, same ops), the maximum taken over valid rows only."""
    max_coordinate = torch.where(valid[:, None], boxes, -torch.inf).max()
    return boxes + class_offsets(classes, max_coordinate)[:, None]


def valid_first_order(scores: Tensor, valid: Tensor, key: Tensor | None = None) -> Tensor:
    """Tensor[n] int64 processing order: valid rows first, grouped by ascending `key` if given, each
    group by decreasing score (ties: lower row), then the invalid rows. For the valid rows this is
    the order of `scores.sort(descending=True, stable=True)` (key None) or of the cpu nms's per-class path."""
    order = scores.sort(descending=True, stable=True)[1]
    if key is not None:
        order = order.index_select(0, key.index_select(0, order).sort(stable=True)[1])
    return order.index_select(0, (~valid.index_select(0, order)).to(torch.uint8).sort(stable=True)[1])
