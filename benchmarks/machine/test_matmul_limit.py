"""The machine's own limit: attainable fp32 GFLOP/s of a large matrix multiply on the configured
threads (MASKRT_BENCH_THREADS, default 2, set by benchmarks/conftest.py).

n = 2048 is 2 * n^3 = 17.2 GFLOP a call, ~0.1-0.2 s on 2 AVX-512 cores: large enough that MKL /
oneDNN runs at its peak, short enough for many rounds. The report divides each model's counted
FLOPs per second by this figure (extra_info["gflops_per_s"] = 2 n^3 / median, group "machine").
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.conftest import THREADS
from benchmarks.tools.timing import measure, median_seconds

GROUP = "machine"
N = 2048


@pytest.mark.quick
def test_matmul_fp32(benchmark):
    torch.manual_seed(0)
    a, b = torch.randn(N, N), torch.randn(N, N)
    out = torch.empty(N, N)
    flops = 2 * N**3
    info = {"flops": flops, "n": N, "dtype": "float32", "threads": THREADS}
    measure(benchmark, lambda: torch.mm(a, b, out=out), group=GROUP, min_rounds=8, max_rounds=30,
            warmup_rounds=2, extra_info=info)
    median = median_seconds(benchmark)
    if median:
        benchmark.extra_info["gflops_per_s"] = flops / median / 1e9
    torch.testing.assert_close(out[:2, :2], a[:2] @ b[:, :2], rtol=1e-4, atol=1e-3)
