"""Per-stage latency of one image through maskrt's pipeline (group "stages <arch> <H>x<W>").

Stages: preprocess, dense (backbone + FPN + RPN head), rpn (proposals), box (RoIAlign + box head
+ decode/NMS), mask (RoIAlign + mask head), paste (each registered CPU implementation, and the
fused id-map paste), render (blend + boxes + labels), encode (one H.264 frame), and the whole
pipeline (image -> full-size masks). Each stage runs on the previous stage's fixed outputs.

Variants (see models.py): "small" (ResNet-18-FPN-64 at 320x320, marked quick: make bench-quick
and the CI smoke check run it) and "r50" (ResNet-50-FPN at 800x1088, full suite only).
Model stages run with the kernels named by MASKRT_BENCH_KERNELS (default "cpu"); FLOPs of the
dense, box and mask stages and of the whole pipeline are counted once (extra_info["flops"]).
Triton paste is left to benchmarks/gpu (on CPU it only runs in the interpreter).
"""

from __future__ import annotations

import os

import pytest

from benchmarks.conftest import bench_image
from benchmarks.tools.timing import count_flops, measure
from maskrt import kernels

from .models import R50, SMALL, build
from .pipeline import FrameEncoder, StagePipeline

KERNELS = os.environ.get("MASKRT_BENCH_KERNELS", "cpu")
PASTE_IMPLS = [impl for impl in kernels.available() if impl != "triton"]
CLASSES = ["__background__"] + [f"class_{i}" for i in range(1, 91)]
# Heavy stages of the r50 variant take seconds a call: fewer rounds there.
ROUNDS = {"small": {"min_rounds": 10, "max_rounds": 100}, "r50": {"min_rounds": 3, "max_rounds": 20}}


@pytest.fixture(scope="module", params=[pytest.param(SMALL, marks=pytest.mark.quick, id="small"),
                                        pytest.param(R50, id="r50")])
def variant(request):
    return request.param


@pytest.fixture(scope="module")
def pipe(variant):
    with kernels.use(KERNELS):
        model = build(variant)
        pipe = StagePipeline(model, bench_image(variant.height, variant.width), CLASSES)
        pipe.flops = {
            "dense": count_flops(pipe.dense),
            "box": count_flops(pipe.box),
            "mask": count_flops(pipe.mask),
            "end to end": count_flops(pipe.end_to_end),
        }
        yield pipe


def run_stage(benchmark, variant, pipe, stage: str, fn, impl: str | None = None, **kwargs):
    info = {"stage": stage, "kernels": impl or KERNELS, "detections": pipe.num_detections}
    if impl:
        info["impl"] = impl
    if pipe.flops.get(stage):
        info["flops"] = pipe.flops[stage]
    with kernels.use(KERNELS):
        return measure(benchmark, fn, group=variant.group, extra_info=info, **{**ROUNDS[variant.name], **kwargs})


def test_preprocess(benchmark, variant, pipe):
    batch, _ = run_stage(benchmark, variant, pipe, "preprocess", pipe.preprocess)
    assert batch.shape[-2] % 32 == 0 and batch.shape[-1] % 32 == 0


def test_dense(benchmark, variant, pipe):
    outputs = run_stage(benchmark, variant, pipe, "dense", pipe.dense)
    assert len(outputs) == len(pipe.features) + 2 * pipe.detector.num_rpn_levels


def test_rpn(benchmark, variant, pipe):
    proposals = run_stage(benchmark, variant, pipe, "rpn", pipe.rpn)
    assert proposals[0].shape[1] == 4


def test_box(benchmark, variant, pipe):
    run_stage(benchmark, variant, pipe, "box", pipe.box)
    assert pipe.num_detections == 100  # score threshold 0: the full detection budget


def test_mask(benchmark, variant, pipe):
    probs = run_stage(benchmark, variant, pipe, "mask", pipe.mask)[0]
    assert probs.shape[0] == pipe.num_detections


@pytest.mark.parametrize("impl", PASTE_IMPLS)
def test_paste(benchmark, variant, pipe, impl):
    masks = run_stage(benchmark, variant, pipe, "paste", lambda: pipe.paste(impl), impl=impl)
    assert tuple(masks.shape) == (pipe.num_detections, variant.height, variant.width)


def test_paste_id_map(benchmark, variant, pipe):
    result = run_stage(benchmark, variant, pipe, "paste id-map", lambda: pipe.paste_id_map("cpu"), impl="cpu")
    assert tuple(result.id_map.shape) == (variant.height, variant.width)


def test_render(benchmark, variant, pipe):
    frame = run_stage(benchmark, variant, pipe, "render", pipe.render)
    assert frame.shape == pipe.image.shape


def test_encode(benchmark, variant, pipe):
    encoder = FrameEncoder(pipe.image)
    try:
        run_stage(benchmark, variant, pipe, "encode", encoder.encode_one, min_rounds=30, warmup_rounds=10)
    finally:
        encoder.close()
    assert encoder.pts >= 1


def test_end_to_end(benchmark, variant, pipe):
    masks = run_stage(benchmark, variant, pipe, "end to end", pipe.end_to_end)
    assert masks.shape[1:] == (variant.height, variant.width)
