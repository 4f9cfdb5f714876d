"""The machine's own limit: attainable GFLOP/s of a large matrix multiply on the configured
threads (MASKRT_BENCH_THREADS, default 2, set by benchmarks/conftest.py), per compute dtype.

Two GEMM libraries are measured, because they do not reach the same fraction of the hardware:
torch's CPU matmul and OpenVINO's (oneDNN brgemm, what the CPU engine's convolutions and matrix
products run on). The best float32 figure is the fp32 limit; OpenVINO's bfloat16 matmul, where
the CPU has native bf16 (AVX512_BF16/AMX), is the limit for engines built with --precision fp16,
and OpenVINO's u8 x i8 matmul (FakeQuantize on the activations, int8 weights: what NNCF's
quantized engines run; the runtime graph is checked to run it in u8) the limit for --precision
int8 ("int8 GFLOP/s" counts a multiply-add as 2 operations, as for floats).

n = 2048 is 2 * n^3 = 17.2 GFLOP a call, ~0.05-0.2 s on 2 AVX-512 cores: large enough for the
libraries' peak, short enough for many rounds. The report divides each model's counted FLOPs
per second by the limit of its compute dtype (extra_info["gflops_per_s"] = 2 n^3 / median,
extra_info["dtype"], group "machine").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.conftest import THREADS
from benchmarks.tools.timing import measure, median_seconds

GROUP = "machine"
N = 2048
FLOPS = 2 * N**3


def record_rate(benchmark) -> None:
    median = median_seconds(benchmark)
    if median:
        benchmark.extra_info["gflops_per_s"] = FLOPS / median / 1e9


def matrices():
    g = torch.Generator().manual_seed(0)
    return torch.randn(N, N, generator=g), torch.randn(N, N, generator=g)


@pytest.mark.quick
def test_matmul_fp32(benchmark):
    """torch.mm, float32."""
    a, b = matrices()
    out = torch.empty(N, N)
    info = {"flops": FLOPS, "n": N, "dtype": "float32", "library": "torch", "threads": THREADS}
    measure(benchmark, lambda: torch.mm(a, b, out=out), group=GROUP, min_rounds=8, max_rounds=30,
            warmup_rounds=2, extra_info=info)
    record_rate(benchmark)
    torch.testing.assert_close(out[:2, :2], a[:2] @ b[:, :2], rtol=1e-4, atol=1e-3)


def openvino_matmul(b: np.ndarray, precision: str):
    """An OpenVINO model computing x @ b (b constant), compiled for the CPU with `precision`."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter(list(b.shape), np.float32)
    model = ov.Model([ops.matmul(x, ops.constant(b), False, False)], [x])
    config = {"INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
    return ov.Core().compile_model(model, "CPU", config).create_infer_request()


@pytest.mark.quick
@pytest.mark.parametrize("precision,dtype", [("f32", "float32"), ("bf16", "bfloat16")], ids=["f32", "bf16"])
def test_matmul_openvino(benchmark, precision, dtype):
    """OpenVINO MatMul, f32 or bf16 compute (bf16 only where the CPU has it natively)."""
    import openvino as ov

    if precision == "bf16" and "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no native bf16")
    a, b = (t.numpy() for t in matrices())
    request = openvino_matmul(b, precision)
    info = {"flops": FLOPS, "n": N, "dtype": dtype, "library": "openvino", "threads": THREADS}
    measure(benchmark, lambda: request.infer([a]), group=GROUP, min_rounds=8, max_rounds=30,
            warmup_rounds=2, extra_info=info)
    record_rate(benchmark)
    out = request.get_output_tensor(0).data
    np.testing.assert_allclose(out[:2, :2], a[:2] @ b[:, :2], rtol=0.05 if dtype == "bfloat16" else 1e-3, atol=1.0)


def openvino_int8_matmul(w: np.ndarray, scale: np.ndarray):
    """OpenVINO model computing FakeQuantize_u8(x over [0, 1]) @ (w * scale), w int8 constant
    [K, N], scale float32 [1, N] (per output column), as NNCF writes quantized layers; compiled
    for the CPU, whose low-precision transformations make it a u8 x i8 FullyConnected."""
    import openvino as ov
    import openvino.opset13 as ops

    def const(v):
        return ops.constant(np.array(v, dtype=np.float32))

    x = ops.parameter([N, w.shape[0]], np.float32)
    fq = ops.fake_quantize(x, const(0), const(1), const(0), const(1), 256)
    weights = ops.multiply(ops.convert(ops.constant(w), np.float32), ops.constant(scale))
    model = ov.Model([ops.matmul(fq, weights, False, False)], [x])
    config = {"INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    return ov.Core().compile_model(model, "CPU", config)


def measure_int8(benchmark, compiled, a: np.ndarray, layer: str, runtime: str) -> np.ndarray:
    """Check that the compiled model's one compute layer runs in u8, time it on `a` (group
    "machine", dtype int8, 2 n^3 operations), record its rate; returns the last output."""
    from maskrt.builders.quantize import runtime_precisions

    ran = runtime_precisions(compiled)
    assert ran == {(layer, "u8"): 1}, f"the int8 {layer} did not run in u8: {dict(ran)}"
    request = compiled.create_infer_request()
    info = {"flops": FLOPS, "n": N, "dtype": "int8", "library": "openvino", "threads": THREADS,
            "runtime": runtime}
    measure(benchmark, lambda: request.infer([a]), group=GROUP, min_rounds=8, max_rounds=30,
            warmup_rounds=2, extra_info=info)
    record_rate(benchmark)
    return request.get_output_tensor(0).data


@pytest.mark.quick
def test_matmul_openvino_int8(benchmark):
    """OpenVINO u8 x i8 MatMul (VNNI/AMX where present, AVX2 vpmaddubsw otherwise).

    Weights are 7-bit (-64..63) so that AVX2's u8 x s8 pair sums into int16 cannot saturate
    (2 x 255 x 64 = 32640 <= 32767): the product of the quantized values is then exact in
    int32, and the check below is float rounding only: the f32 reference sums 2048 terms to
    |out| <= ~40, off by <= 2048 x 2^-24 x 40 ~ 5e-3 at worst (~1e-4 typical; 1.5e-5 measured
    on AMD EPYC Zen 3, AVX2), inside 1e-3 + 1e-3 x |out|. With full 8-bit weights the AVX2 path
    saturates on such uniform data (errors ~7 were measured), which is why NNCF keeps the first
    layer of each model to 7-bit weights (its overflow fix)."""
    g = np.random.default_rng(0)
    a = g.random((N, N), dtype=np.float32)
    w = g.integers(-64, 64, (N, N)).astype(np.int8)
    scale = (g.random((1, N)) * 0.01 + 0.001).astype(np.float32)
    out = measure_int8(benchmark, openvino_int8_matmul(w, scale), a, "FullyConnected", "FullyConnected u8 x i8")
    expected = (np.round(a[:2] * 255) / 255) @ (w.astype(np.float32) * scale)
    np.testing.assert_allclose(out[:2], expected, rtol=1e-3, atol=1e-3)


def openvino_int8_conv1x1(w: np.ndarray, scale: np.ndarray):
    """The same u8 x i8 product as a 1x1 convolution, the form the quantized engine's dense and
    mask stages run: FakeQuantize_u8(x [1, K, 32, 64]) conv (w * scale) [N, K, 1, 1], i.e. a GEMM
    of 2048 pixels x K x N. On AVX2 without VNNI, OpenVINO's int8 convolution kernels are much
    faster than its u8 FullyConnected (1.8x, medians, AMD EPYC Zen 3), so without this the
    "int8 limit" would sit below what the engine's convolutions attain."""
    import openvino as ov
    import openvino.opset13 as ops

    def const(v):
        return ops.constant(np.array(v, dtype=np.float32))

    x = ops.parameter([1, w.shape[1], 32, N // 32], np.float32)
    fq = ops.fake_quantize(x, const(0), const(1), const(0), const(1), 256)
    weights = ops.multiply(ops.convert(ops.constant(w), np.float32), ops.constant(scale))
    conv = ops.convolution(fq, weights, [1, 1], [0, 0], [0, 0], [1, 1])
    model = ov.Model([conv], [x])
    config = {"INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    return ov.Core().compile_model(model, "CPU", config)


@pytest.mark.quick
def test_conv1x1_openvino_int8(benchmark):
    """OpenVINO u8 x i8 1x1 convolution, 2 n^3 operations like the matmul (7-bit weights, for the
    reason given in test_matmul_openvino_int8; the same float-rounding argument for the check)."""
    g = np.random.default_rng(0)
    a = g.random((1, N, 32, N // 32), dtype=np.float32)
    w = g.integers(-64, 64, (N, N, 1, 1)).astype(np.int8)
    scale = (g.random((N, 1, 1, 1)) * 0.01 + 0.001).astype(np.float32)
    out = measure_int8(benchmark, openvino_int8_conv1x1(w, scale), a, "Convolution",
                       "Convolution 1x1 u8 x i8")  # [1, N, 32, 64]
    x = np.round(a[0, :, 0, :2] * 255) / 255  # [K, 2]: two pixels
    expected = (w[:4, :, 0, 0].astype(np.float32) * scale[:4, :, 0, 0]) @ x  # [4, 2]
    np.testing.assert_allclose(out[0, :4, 0, :2], expected, rtol=1e-3, atol=1e-3)
