"""The kernel launches the Triton wrappers make at the model's sizes, recorded on fake CUDA tensors.

`configurations()` runs every op's warm-up calls (maskrt.kernels.registry, at the sizes of Mask
R-CNN R50-FPN on an 800x1088 image) inside `fake_cuda()` - no GPU, no data - and returns the recorded
launches, named. The compile tests (tests/gpu_verify/test_ptx.py) and the compile benchmark
(benchmarks/gpu/test_compile.py) compile exactly these.
"""

from __future__ import annotations

import torch

from ..kernels.registry import OPS
from .fake_cuda import fake_cuda

NAMES = {
    "roi_align float32": ("roi_align S=7 float32", "roi_align S=14 float32"),
    "roi_align float16": ("roi_align S=7 float16", "roi_align S=14 float16"),
    "roi_align float64": ("roi_align S=7 float64", "roi_align S=14 float64"),
    "nms": ("nms iou_mask", "nms greedy_scan", "nms segments"),
    "paste": ("paste plain", "paste fused", "paste detectron2 plain", "paste detectron2 fused"),
}


def recorded(group: str, small: bool = False) -> list:
    """The launches of one group (a key of NAMES: an op, with the features' dtype for roi_align)
    on fake CUDA tensors (model sizes unless small)."""
    op, _, dtype = group.partition(" ")
    with fake_cuda() as run:
        OPS[op].warm_up("cuda", small, getattr(torch, dtype or "float32"))
    return run.launches


def configurations() -> list:
    """[(name, maskrt.gpu_verify.recording.Launch)] for every kernel configuration the wrappers launch."""
    out = []
    for group, names in NAMES.items():
        launches = recorded(group)
        if len(launches) != len(names):
            raise RuntimeError(f"{group}: {len(launches)} launches recorded, expected {len(names)} ({names})")
        out += list(zip(names, launches))
    return out
