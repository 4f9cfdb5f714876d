"""Batched NMS on the CPU: maskrt's cpu nms vs torchvision.ops.batched_nms (same kept set and order).

4000 boxes: box-head-like (80 classes, IoU 0.5) and RPN-like (5 levels as classes, IoU 0.7).
Target: at least as fast as batched_nms.
Run: .venv/bin/python -m pytest benchmarks/kernels/test_nms.py --benchmark-only
"""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import batched_nms

from maskrt.kernels.nms import cpu

pytestmark = pytest.mark.quick  # seconds each: part of make bench-quick and the CI smoke check

CASES = {"80 classes, iou 0.5": (80, 0.5), "5 classes, iou 0.7": (5, 0.7)}


def workload(classes: int):
    g = torch.Generator().manual_seed(classes)
    n = 4000
    xy = torch.rand(n, 2, generator=g) * torch.tensor([1088.0, 800.0])
    wh = 8 + torch.rand(n, 2, generator=g) * 250
    return torch.cat([xy, xy + wh], 1), torch.rand(n, generator=g), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize("case", list(CASES))
def test_torchvision_batched_nms(benchmark, case):
    classes, thr = CASES[case]
    boxes, scores, cls = workload(classes)
    benchmark.group = f"nms 4000 boxes, {case}"
    benchmark.pedantic(batched_nms, args=(boxes, scores, cls, thr), rounds=30, warmup_rounds=3)


@pytest.mark.parametrize("case", list(CASES))
def test_maskrt_cpu_nms(benchmark, case):
    classes, thr = CASES[case]
    boxes, scores, cls = workload(classes)
    benchmark.group = f"nms 4000 boxes, {case}"
    keep = benchmark.pedantic(cpu.nms, args=(boxes, scores, cls, thr, -1), rounds=30, warmup_rounds=3)
    assert torch.equal(keep, batched_nms(boxes, scores, cls, thr))
