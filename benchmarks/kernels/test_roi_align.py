"""Multi-level RoIAlign on the CPU: maskrt's cpu kernel vs torchvision's MultiScaleRoIAlign.

1000 RoIs x 256 channels x 7x7 (sampling_ratio 2, aligned=False: Mask R-CNN's box head) over
the 4 FPN levels (strides 4..32) of an 800x1088 input. Target: >= 5x faster than torchvision.
Our output is channels_last (same values); the `+contiguous` row adds the NCHW copy for reference.
Run: .venv/bin/python -m pytest benchmarks/kernels/test_roi_align.py --benchmark-only
"""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign

from maskrt.kernels.roi_align import cpu

pytestmark = pytest.mark.quick  # seconds each: part of make bench-quick and the CI smoke check

GROUP = "roi_align 1000 RoIs x 256 ch x 7x7, 4 levels of 800x1088"
SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]


@pytest.fixture(scope="module")
def workload():
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(1, 256, 200 // 2**i, 272 // 2**i, generator=g) for i in range(4)]
    n = 1000
    xy = torch.rand(n, 2, generator=g) * torch.tensor([1088.0, 800.0])
    log_wh = torch.rand(n, 2, generator=g) * (torch.log(torch.tensor(600.0)) - torch.log(torch.tensor(16.0)))
    wh = torch.exp(log_wh + torch.log(torch.tensor(16.0)))  # 16..600 px: every level gets RoIs
    boxes = torch.minimum(torch.cat([xy, xy + wh], 1), torch.tensor([1088.0, 800.0, 1088.0, 800.0]))
    return feats, boxes


def test_torchvision_multiscale_roi_align(benchmark, workload):
    feats, boxes = workload
    pool = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    named = {str(i): f for i, f in enumerate(feats)}
    benchmark.group = GROUP
    out = benchmark.pedantic(pool, args=(named, [boxes], [(800, 1088)]), rounds=5, warmup_rounds=1)
    assert out.shape == (1000, 256, 7, 7)


def test_maskrt_cpu_roi_align(benchmark, workload):
    feats, boxes = workload
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], 1)
    benchmark.group = GROUP
    out = benchmark.pedantic(cpu.roi_align, args=(feats, rois, SCALES, 7, 2, False), rounds=15, warmup_rounds=2)
    assert out.shape == (1000, 256, 7, 7)


def test_maskrt_cpu_roi_align_contiguous(benchmark, workload):
    feats, boxes = workload
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], 1)
    benchmark.group = GROUP
    out = benchmark.pedantic(lambda: cpu.roi_align(feats, rois, SCALES, 7, 2, False).contiguous(), rounds=15,
                             warmup_rounds=2)
    assert out.is_contiguous()
