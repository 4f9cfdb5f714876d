"""End to end on one 800x1333 image, maskrcnn_resnet50_fpn (v1) with seeded weights, 91 classes,
torchvision's default thresholds, all on 2 threads, side by side in group "e2e r50-fpn 800x1333":

- torchvision eager (the baseline)
- ONNX Runtime running torchvision's own ONNX export (opset 11)
- maskrt torch backend (eager, reference kernels)
- maskrt CPU engine (OpenVINO stages + maskrt CPU glue), fp32, fp16 and int8 (NNCF-quantized
  stages, u8/i8 convolutions and matrix products; compute_dtype "int8", compared with the
  machine's int8 matmul limit)

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


class Engines(dict):
    """The CPU engine of each precision, built on first use (once per module), loaded on THREADS
    threads. int8: calibrated on `calibration_dir` (4 images like the timed one)."""

    def __init__(self, checkpoint, calibration_dir, folder):
        super().__init__()
        self.checkpoint, self.calibration_dir, self.folder = checkpoint, calibration_dir, folder

    def __missing__(self, precision: str):
        calibration = str(self.calibration_dir) if precision == "int8" else None
        engine = build_engine(self.checkpoint, self.folder / f"r50-{precision}.maskrt", precision=precision,
                              calibration=calibration, progress=False)
        self[precision] = maskrt.load(engine, num_threads=THREADS)
        return self[precision]


@pytest.fixture(scope="module")
def engines(checkpoint, calibration_dir, tmp_path_factory) -> Engines:
    return Engines(checkpoint, calibration_dir, tmp_path_factory.mktemp("engines"))


def test_maskrt_cpu_engine(benchmark, engines, image, flops):
    seg = engines["fp32"]
    benchmark.group = GROUP
    benchmark.extra_info["flops"] = flops
    benchmark.pedantic(lambda: seg(image).masks, rounds=ROUNDS, warmup_rounds=1)


def test_maskrt_cpu_engine_fp16(benchmark, engines, image, flops):
    """`--precision fp16` on the CPU: fp16 weights, bf16 compute where the CPU supports it."""
    seg = engines["fp16"]
    benchmark.group = GROUP
    benchmark.extra_info["flops"] = flops
    benchmark.extra_info["compute_dtype"] = "bfloat16" if seg.backend.compute_precision == "bf16" else "float32"
    benchmark.pedantic(lambda: seg(image).masks, rounds=ROUNDS, warmup_rounds=1)


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory):
    """Four images like the timed one (other seeds): the seeded weights then give their full 100
    detections, so the mask head is calibrated (and quantized) too."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("calibration")
    for seed in range(1, 5):
        Image.fromarray(bench_image(800, 1333, seed=seed)).save(folder / f"{seed}.png")
    return folder


def test_maskrt_cpu_engine_int8(benchmark, engines, image, flops):
    """`--precision int8`. Speed only: seeded weights say nothing about quantization accuracy
    (that is measured on the trained bundled model, benchmarks/results/INT8.md)."""
    seg = engines["int8"]
    benchmark.group = GROUP
    benchmark.extra_info.update(flops=flops, compute_dtype="int8",
                                int8_stages=",".join(s for s, k in seg.backend.manifest.quantization["stages"].items()
                                                     if k == "int8"))
    benchmark.pedantic(lambda: seg(image).masks, rounds=ROUNDS, warmup_rounds=1)


# --- the CPU engines stage by stage: where the time goes against the machine's limits -------------

STAGE_GROUP = "engine stages r50-fpn 800x1333"


def stage_inputs(seg, image) -> dict:
    """The dense, box and mask stage inputs of one engine call on `image` (torch tensors, before
    the row padding the stages add themselves)."""
    detector = seg.backend.detector
    heads = detector.heads
    seen, saved = {}, (detector.dense, heads.box_fn, heads.mask_fn)

    def recording(name, fn):
        def call(x):
            seen[name] = x.clone()
            return fn(x)
        return call

    detector.dense, heads.box_fn, heads.mask_fn = (recording(n, f) for n, f in zip(("dense", "box", "mask"), saved))
    try:
        seg(image)
    finally:
        detector.dense, heads.box_fn, heads.mask_fn = saved
    return seen


@pytest.fixture(scope="module")
def stage_flops(checkpoint, engines, image) -> dict:
    """FLOPs of each stage on this image's inputs, counted on the eager model (the same network)."""
    from maskrt.model import load_model

    model = load_model(checkpoint).model
    inputs = stage_inputs(engines["fp32"], image)
    return {name: count_flops(lambda: getattr(model, name)(x)) for name, x in inputs.items()}


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("stage", ["dense", "box", "mask"])
def test_engine_stage(benchmark, engines, image, stage_flops, stage, precision):
    """One compiled stage called alone on its real input (the dense stage's 800x1344 batch, the
    box head's 1000 proposals, the mask head's detections)."""
    seg = engines[precision]
    x = stage_inputs(seg, image)[stage]
    fn = {"dense": seg.backend.detector.dense, "box": seg.backend.detector.heads.box_fn,
          "mask": seg.backend.detector.heads.mask_fn}[stage]
    benchmark.group = STAGE_GROUP
    benchmark.extra_info.update(stage=stage, precision=precision, rows=int(x.shape[0]), flops=stage_flops[stage],
                                compute_dtype="int8" if precision == "int8" else "float32")
    benchmark.pedantic(lambda: fn(x), rounds=ROUNDS, warmup_rounds=1)


# --- one engine call: the stages and the glue between them --------------------------------------

GLUE_GROUP = "glue r50-fpn 800x1333"


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_engine_glue(benchmark, engines, image, precision):
    """One engine call plus the fused paste (what the stream makes), timed whole; extra_info has
    each step's median ms (dense, box stage, mask stage; proposals, both RoIAligns, box decode +
    NMS, mask selection, preprocess + rescale, paste) and the glue's share of the call
    (benchmarks/tools/glue.py). The issue's bar: glue at most 10% of an int8 frame."""
    from benchmarks.tools.glue import breakdown

    seg = engines[precision]
    benchmark.group = GLUE_GROUP
    benchmark.extra_info.update(precision=precision, **breakdown(seg, image, calls=ROUNDS))
    benchmark.pedantic(lambda: seg(image).instances, rounds=ROUNDS, warmup_rounds=1)
