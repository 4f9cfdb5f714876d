"""End to end on one 800x1333 image, maskrcnn_resnet50_fpn (v1) with seeded weights, 91 classes,
torchvision's default thresholds, all on 2 threads, side by side in group "e2e r50-fpn 800x1333":

- torchvision eager (the baseline)
- ONNX Runtime running torchvision's own ONNX export (opset 11)
- maskrt torch backend (eager, reference kernels)
- maskrt CPU engine (OpenVINO stages + maskrt CPU glue)

Each returns full-size boolean masks, so mask paste is inside every timing.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

import maskrt
from benchmarks.conftest import THREADS, bench_image
from benchmarks.tools.timing import count_flops
from maskrt.builders import build_engine

GROUP = "e2e r50-fpn 800x1333"
ROUNDS = 5  # seconds-long calls on a shared machine: medians of 5


@pytest.fixture(scope="module")
def oracle():
    torch.manual_seed(0)
    return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).eval()


@pytest.fixture(scope="module")
def checkpoint(oracle, tmp_path_factory):
    path = tmp_path_factory.mktemp("r50") / "r50.pth"
    torch.save(oracle.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def image():
    return bench_image(800, 1333)


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255.0


@pytest.fixture(scope="module")
def flops(oracle, image) -> int:
    """FLOPs of one torchvision forward on the image (convolutions and matmuls), shared by all four."""
    return count_flops(lambda: oracle([as_tensor(image)]))


def test_torchvision_eager(benchmark, oracle, image, flops):
    tensor = as_tensor(image)

    def run():
        with torch.inference_mode():
            return oracle([tensor])[0]["masks"] > 0.5

    benchmark.group = GROUP
    benchmark.extra_info.update(baseline=True, flops=flops)
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1)


def test_onnxruntime_torchvision_export(benchmark, oracle, image, tmp_path, flops):
    import onnxruntime as ort

    path = tmp_path / "torchvision_maskrcnn.onnx"
    tensor = as_tensor(image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(oracle, ([tensor],), str(path), opset_version=11, dynamo=False, input_names=["images"],
                          output_names=["boxes", "labels", "scores", "masks"],
                          dynamic_axes={"images": {1: "height", 2: "width"}})
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"images": tensor.numpy()}

    def run():
        masks = session.run(None, feed)[3]
        return masks > 0.5

    benchmark.group = GROUP
    benchmark.extra_info["flops"] = flops
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1)


def test_maskrt_torch_backend(benchmark, checkpoint, image, flops):
    seg = maskrt.load(checkpoint, backend="torch")
    benchmark.group = GROUP
    benchmark.extra_info["flops"] = flops
    benchmark.pedantic(lambda: seg(image).masks, rounds=ROUNDS, warmup_rounds=1)


def test_maskrt_cpu_engine(benchmark, checkpoint, image, tmp_path, flops):
    engine = build_engine(checkpoint, tmp_path / "r50.maskrt", progress=False)
    seg = maskrt.load(engine, num_threads=THREADS)
    benchmark.group = GROUP
    benchmark.extra_info["flops"] = flops
    benchmark.pedantic(lambda: seg(image).masks, rounds=ROUNDS, warmup_rounds=1)


def test_maskrt_cpu_engine_fp16(benchmark, checkpoint, image, tmp_path, flops):
    """`--precision fp16` on the CPU: fp16 weights, bf16 compute where the CPU supports it."""
    engine = build_engine(checkpoint, tmp_path / "r50-fp16.maskrt", precision="fp16", progress=False)
    seg = maskrt.load(engine, num_threads=THREADS)
    benchmark.group = GROUP
    benchmark.extra_info["flops"] = flops
    benchmark.extra_info["compute_dtype"] = "bfloat16" if seg.backend.compute_precision == "bf16" else "float32"
    benchmark.pedantic(lambda: seg(image).masks, rounds=ROUNDS, warmup_rounds=1)
