"""End to end on the GPU, maskrcnn_resnet50_fpn (seeded weights) on one 800x1088 image, full-size
masks inside every timing, group "gpu e2e r50-fpn 800x1088":

- torchvision eager on CUDA (the baseline)
- maskrt torch backend on CUDA with the Triton kernels
- maskrt TensorRT engine, fp32 and fp16 (`maskrt build --target tensorrt`)

UNVERIFIED HERE (no GPU, no TensorRT): skipped with a visible reason where either is missing.
"""

from __future__ import annotations

import pytest
import torch

import maskrt
from benchmarks.conftest import bench_image
from maskrt.testing import r50_torchvision_maskrcnn
from benchmarks.tools.timing import count_flops
from maskrt import kernels

from .common import cuda_measure, require_cuda, require_tensorrt, require_triton

GROUP = "gpu e2e r50-fpn 800x1088"


@pytest.fixture(scope="module")
def device():
    return require_cuda()


@pytest.fixture(scope="module")
def oracle():
    return r50_torchvision_maskrcnn()


@pytest.fixture(scope="module")
def checkpoint(oracle, tmp_path_factory):
    path = tmp_path_factory.mktemp("gpu_r50") / "r50.pth"
    torch.save(oracle.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def image():
    return bench_image(800, 1088)


def test_gpu_torchvision_eager(benchmark, device, oracle, image):
    model = oracle.to(device)
    tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(255).to(device)

    def run():
        with torch.inference_mode():
            return model([tensor])[0]["masks"] > 0.5

    flops = count_flops(run)
    cuda_measure(benchmark, run, group=GROUP, baseline=True, extra_info={"flops": flops})
    oracle.cpu()


def test_gpu_maskrt_torch_triton(benchmark, device, checkpoint, image):
    require_triton()
    seg = maskrt.load(checkpoint, device="cuda", backend="torch")
    with kernels.use("triton"):
        cuda_measure(benchmark, lambda: seg(image).masks, group=GROUP, extra_info={"kernels": "triton"})


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_gpu_tensorrt_engine(benchmark, device, checkpoint, image, precision, tmp_path):
    require_tensorrt()
    from maskrt.builders import build_engine

    engine = build_engine(checkpoint, tmp_path / f"r50_{precision}.maskrt", target="tensorrt", precision=precision,
                          progress=False)
    seg = maskrt.load(engine, device="cuda")
    cuda_measure(benchmark, lambda: seg(image).masks, group=GROUP, extra_info={"precision": precision})
