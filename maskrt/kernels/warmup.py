"""Compile every kernel once, at load, instead of on the first frames: Triton's (GPU) and numba's (CPU).

Triton compiles a kernel on its first launch for each new specialization (dtypes, constexprs,
and - unless excluded by do_not_specialize - integers equal to 1 or divisible by 16). Our
kernels do not specialize per-frame sizes, so one launch of each configuration, on small
inputs, compiles everything a stream will use: `warm_up(device, dtype)` makes those launches.
`exercise(device, dtype, small)` is the list of calls; on fake CUDA tensors at the model's sizes
(small=False) it is what `maskrt.gpu_verify.launches` records for the compile tests, and the tests
check that the small calls launch the same specializations as the model-sized ones.
"""

from __future__ import annotations

import functools

import torch

from .registry import OPS


def exercise(device, dtype: torch.dtype = torch.float32, small: bool = True) -> None:
    """Call every op once per kernel configuration on `device` (dtype: the features' dtype)."""
    for op in OPS.values():
        op.warm_up(device, small, dtype)


def warm_up(device, dtype: torch.dtype = torch.float32) -> None:
    """Compile (or load from triton's cache) every kernel the model and the plugins launch."""
    exercise(device, dtype, small=True)


@functools.cache
def warm_up_cpu() -> None:
    """Compile (or load from numba's cache) every numba kernel of the CPU ops, once per process,
    by running the ops on small inputs laid out as a frame's: RoIAlign over whole tables and over
    the rows its taps read (a FeaturePyramid's second call adding rows), NMS, and the paste (its
    first-use probe, and boxes large enough for the compiled rows) into a full stack and an id
    map. Float32, as the engines run (~0.3 s from numba's cache, numba's import aside)."""
    from .nms import cpu as nms_cpu
    from .paste import cpu as paste_cpu
    from .roi_align import cpu as roi_cpu

    g = torch.Generator().manual_seed(0)
    scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    rois = torch.tensor([[0, 4.0, 6.0, 60.0, 50.0], [0, 10.0, 2.0, 200.0, 180.0], [0, 0.0, 0.0, 20.0, 24.0]])
    with torch.inference_mode():
        small = [torch.rand(1, 8, 16 // 2**i, 16 // 2**i, generator=g) for i in range(4)]
        roi_cpu.roi_align(small, rois.repeat(20, 1), scales, 7)  # taps > table / 8: whole tables
        large = roi_cpu.FeaturePyramid([torch.rand(1, 8, 128 // 2**i, 128 // 2**i, generator=g) for i in range(4)])
        roi_cpu.roi_align(large, rois[:1], scales, 7)  # few taps: only the rows they read
        roi_cpu.roi_align(large, rois[1:], scales, 14)  # the rows the second call adds
        boxes, scores = rois[:, 1:], torch.tensor([0.9, 0.8, 0.7])
        nms_cpu.nms(boxes, scores, torch.zeros(3, dtype=torch.int64), 0.5)
        paste_cpu.emulation_matches_torch()
        masks = torch.rand(3, 28, 28, generator=g)
        paste_cpu.paste(masks, boxes, 240, 320, 0.5)
        paste_cpu.paste_id_map(masks, boxes, 240, 320, 0.5, scores)
