"""The machine's own limit: attainable GFLOP/s of a large matrix multiply on the configured
threads (MASKRT_BENCH_THREADS, default 2, set by benchmarks/conftest.py), per compute dtype.

Two GEMM libraries are measured, because they do not reach the same fraction of the hardware:
torch's CPU matmul and OpenVINO's (oneDNN brgemm, what the CPU engine's convolutions and matrix
products run on). The best float32 figure is the fp32 limit; OpenVINO's bfloat16 matmul, where
the CPU has native bf16 (AVX512_BF16/AMX), is the limit for engines built with --precision fp16.

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
