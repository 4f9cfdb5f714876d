"""Mask paste on the CPU: maskrt's cpu paste and fused id-map vs torchvision's paste_masks_in_image.

100 masks (28x28 probabilities) into a 1920x1080 image, boxes 20..400 px. The baseline is
torchvision's paste_masks_in_image followed by `> 0.5` (exactly our reference). Target: >= 10x.
Run: .venv/bin/python -m pytest benchmarks/kernels/test_paste.py --benchmark-only
"""

from __future__ import annotations

import pytest
import torch

from maskrt.kernels.paste import cpu
from maskrt.kernels.paste.reference import paste as torchvision_paste

pytestmark = pytest.mark.quick  # seconds each: part of make bench-quick and the CI smoke check
# Two warm-up rounds: a process's second call pays glibc's heap growth once (its first call's large
# buffers were mmap'ed and freed, which raises malloc's mmap threshold, so the second call's come from
# a heap that grows: ~1150 page faults, 3-15 ms for the id map; none from the third call on).
WARMUP = 2

GROUP = "paste 100 masks into 1920x1080"
H, W = 1080, 1920


@pytest.fixture(scope="module")
def workload():
    g = torch.Generator().manual_seed(0)
    n = 100
    xy = torch.rand(n, 2, generator=g) * torch.tensor([W - 20.0, H - 20.0])
    wh = 20 + torch.rand(n, 2, generator=g) * 380
    masks = torch.sigmoid(torch.randn(n, 28, 28, generator=g) * 3)
    return masks, torch.cat([xy, xy + wh], 1), torch.rand(n, generator=g)


def test_torchvision_paste_masks_in_image(benchmark, workload):
    masks, boxes, _ = workload
    benchmark.group = GROUP
    out = benchmark.pedantic(torchvision_paste, args=(masks, boxes, H, W, 0.5), rounds=3, warmup_rounds=WARMUP)
    assert out.shape == (100, H, W)


def test_maskrt_cpu_paste(benchmark, workload):
    masks, boxes, _ = workload
    benchmark.group = GROUP
    out = benchmark.pedantic(cpu.paste, args=(masks, boxes, H, W, 0.5), rounds=10, warmup_rounds=WARMUP)
    assert torch.equal(out, torchvision_paste(masks, boxes, H, W, 0.5))


def test_maskrt_cpu_paste_id_map(benchmark, workload):
    masks, boxes, scores = workload
    benchmark.group = GROUP
    res = benchmark.pedantic(cpu.paste_id_map, args=(masks, boxes, H, W, 0.5, scores), rounds=10, warmup_rounds=WARMUP)
    assert res.id_map.shape == (H, W)
