"""Compile every Triton kernel configuration once, at load, instead of on the first frames.

Triton compiles a kernel on its first launch for each new specialization (dtypes, constexprs,
and - unless excluded by do_not_specialize - integers equal to 1 or divisible by 16). Our
kernels do not specialize per-frame sizes, so one launch of each configuration, on small
inputs, compiles everything a stream will use: `warm_up(device, dtype)` makes those launches.
`exercise(device, dtype, small)` is the list of calls; on fake CUDA tensors at the model's sizes
(small=False) it is what `maskrt.gpu_verify.launches` records for the compile tests, and the tests
check that the small calls launch the same specializations as the model-sized ones.
"""

from __future__ import annotations

import importlib

import torch

HEIGHT, WIDTH, CHANNELS = 800, 1088, 256  # the model-sized calls: R50-FPN on an 800 x 1088 image
MASK = 28


def _op(name: str):
    return importlib.import_module(f"maskrt.kernels.{name}.triton")


def random_boxes(n: int, height: int, width: int, device) -> torch.Tensor:
    """Tensor[n, 4] float32 xyxy boxes inside a height x width image."""
    xy = torch.rand(n, 2, device=device) * torch.tensor([width * 0.8, height * 0.8], device=device)
    wh = 8 + torch.rand(n, 2, device=device) * torch.tensor([width * 0.3, height * 0.3], device=device)
    return torch.cat([xy, xy + wh], 1)


def nms_calls(device, small: bool) -> None:
    """The dense path (RPN-sized inputs) and the per-class path (e.g. 1000 RoIs x 80 classes)."""
    from .nms.common import trick_limit

    nms = _op("nms").nms
    dense_max = trick_limit(torch.device(device)) // 4
    for n in ((37, dense_max + 1) if small else (4000, 80_000)):
        boxes = random_boxes(n, HEIGHT, WIDTH, device)
        nms(boxes, torch.rand(n, device=device), torch.randint(0, 80, (n,), device=device), 0.5, 100)


def paste_calls(device, small: bool) -> None:
    """Plain paste and the fused paste of 100 masks on an 800 x 1088 image (small: 3 on 40 x 56)."""
    paste = _op("paste")
    n, h, w = (3, 40, 56) if small else (100, HEIGHT, WIDTH)
    masks, boxes = torch.rand(n, MASK, MASK, device=device), random_boxes(n, h, w, device)
    paste.paste(masks, boxes, h, w, 0.5)
    paste.paste_id_map(masks, boxes, h, w, 0.5, torch.rand(n, device=device))


def roi_align_calls(device, small: bool, dtype: torch.dtype = torch.float32) -> None:
    """The box head's S = 7 over 1000 proposals and the mask head's S = 14 over 100 detections, on
    P2-P5 of an 800 x 1088 image with 256 channels (small: 3 RoIs on 64 x 96 maps of 8 channels)."""
    roi_align = _op("roi_align").roi_align
    h, w, c = (64, 96, 8) if small else (HEIGHT, WIDTH, CHANNELS)
    features = [torch.randn(1, c, h // s, w // s, device=device).to(dtype) for s in (4, 8, 16, 32)]
    for size, n in ((7, 3 if small else 1000), (14, 3 if small else 100)):
        rois = torch.cat([torch.zeros(n, 1, device=device), random_boxes(n, h, w, device)], 1)
        roi_align(features, rois, [1 / 4, 1 / 8, 1 / 16, 1 / 32], size, 2, False)


CALLS = {"roi_align": roi_align_calls, "nms": nms_calls, "paste": paste_calls}


def exercise(device, dtype: torch.dtype = torch.float32, small: bool = True) -> None:
    """Call every op once per kernel configuration on `device` (dtype: the features' dtype)."""
    for op, calls in CALLS.items():
        calls(device, small, dtype) if op == "roi_align" else calls(device, small)


def warm_up(device, dtype: torch.dtype = torch.float32) -> None:
    """Compile (or load from triton's cache) every kernel the model and the plugins launch."""
    exercise(device, dtype, small=True)
