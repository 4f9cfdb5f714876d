"""Triton kernels against torchvision's CUDA ops (the `reference` implementations on CUDA tensors),
one group per op at the r50-fpn 800x1088 sizes; reference is each group's baseline.
UNVERIFIED HERE (no GPU): skipped with a visible reason where CUDA or triton is missing.
Marked quick, so make bench-quick and the CI smoke check show that reason (or run them on a GPU).
"""

from __future__ import annotations

import pytest
import torch

from maskrt import kernels

from .common import cuda_measure, require_cuda, require_triton

pytestmark = pytest.mark.quick
IMPLS = ["reference", "triton"]
HEIGHT, WIDTH, CHANNELS = 800, 1088, 256


@pytest.fixture(scope="module")
def device():
    dev = require_cuda()
    require_triton()
    return dev


def random_boxes(n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator) * torch.tensor([width * 0.9, height * 0.9])
    wh = 8 + torch.rand(n, 2, generator=generator) * torch.tensor([width * 0.3, height * 0.3])
    return torch.cat([xy, (xy + wh).minimum(torch.tensor([width - 1.0, height - 1.0]))], dim=1)


@pytest.mark.parametrize("impl", IMPLS)
def test_gpu_roi_align(benchmark, device, impl):
    g = torch.Generator().manual_seed(0)
    features = [torch.randn(1, CHANNELS, HEIGHT // s, WIDTH // s, generator=g).to(device) for s in (4, 8, 16, 32)]
    boxes = random_boxes(1000, HEIGHT, WIDTH, g)
    rois = torch.cat([torch.zeros(1000, 1), boxes], dim=1).to(device)
    scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    fn = kernels.get("roi_align", impl)
    cuda_measure(benchmark, lambda: fn(features, rois, scales, 7, 2, False), group="gpu roi_align 1000x256x7x7",
                 baseline=impl == "reference", extra_info={"impl": impl})


@pytest.mark.parametrize("impl", IMPLS)
def test_gpu_nms(benchmark, device, impl):
    g = torch.Generator().manual_seed(0)
    boxes = random_boxes(4000, HEIGHT, WIDTH, g).to(device)
    scores = torch.rand(4000, generator=g).to(device)
    classes = torch.randint(0, 90, (4000,), generator=g).to(device)
    fn = kernels.get("nms", impl)
    cuda_measure(benchmark, lambda: fn(boxes, scores, classes, 0.5, 100), group="gpu nms 4000 boxes",
                 baseline=impl == "reference", extra_info={"impl": impl})


@pytest.mark.parametrize("impl", IMPLS)
def test_gpu_paste(benchmark, device, impl):
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(100, 28, 28, generator=g).to(device)
    boxes = random_boxes(100, HEIGHT, WIDTH, g).to(device)
    fn = kernels.get("paste", impl)
    cuda_measure(benchmark, lambda: fn(masks, boxes, HEIGHT, WIDTH, 0.5), group="gpu paste 100x800x1088",
                 baseline=impl == "reference", extra_info={"impl": impl})
