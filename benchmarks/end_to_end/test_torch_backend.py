"""End to end, torch backend vs torchvision's own model: same seeded weights, same image.

Group "e2e r50-fpn 800x1333 (torch)": maskrcnn_resnet50_fpn (v1), 91 classes, seeded weights,
an 800x1333 input (no resize), torchvision's default thresholds. Masks pasted to full size in both.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

import maskrt
from benchmarks.conftest import bench_image

GROUP = "e2e r50-fpn 800x1333 (torch)"
ROUNDS = 3


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    oracle = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).eval()
    path = tmp_path_factory.mktemp("r50") / "r50.pth"
    torch.save(oracle.state_dict(), path)
    return oracle, maskrt.load(str(path), backend="torch")


@pytest.fixture(scope="module")
def image():
    return bench_image(800, 1333)


def test_torchvision_eager(benchmark, models, image):
    oracle, _ = models
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0

    def run():
        with torch.inference_mode():
            return oracle([tensor])[0]["masks"] > 0.5

    benchmark.group = GROUP
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1)


def test_maskrt_torch_backend(benchmark, models, image):
    _, seg = models

    def run():
        return seg(image).masks

    benchmark.group = GROUP
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1)
