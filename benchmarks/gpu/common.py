"""GPU benchmark helpers. UNVERIFIED HERE: no machine of this project has a GPU; on one without,
every GPU benchmark is skipped with the reason shown in pytest's summary (-ra).

Timing: each round is the call followed by torch.cuda.synchronize(), so the wall time covers the
queued GPU work (pytest-benchmark's median/p90/p99 are of that). Each benchmark also records the
median of CUDA-event timings (device time, no host overhead) in extra_info["cuda_event_ms"].
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from benchmarks.tools.timing import cuda_synchronized, measure

EVENT_ROUNDS = 20


def require_cuda() -> torch.device:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU: GPU benchmarks need torch.cuda.is_available()")
    return torch.device("cuda")


def require_triton() -> None:
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"no triton: {exc}")


def require_tensorrt() -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pytest.skip("no TensorRT: pip install 'maskrt[tensorrt]' on a machine with an NVIDIA GPU")


def cuda_event_ms(fn: Callable, rounds: int = EVENT_ROUNDS) -> float:
    """Median device time of fn in milliseconds, from CUDA events around each call."""
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(torch.tensor(times).median())


def cuda_measure(benchmark, fn: Callable, *, group: str, baseline: bool = False, warmup_calls: int = 3, **kwargs):
    """Warm up (Triton compiles, cuDNN picks algorithms), time synchronised calls, add CUDA-event time."""
    call = cuda_synchronized(fn)
    for _ in range(warmup_calls):
        call()
    info = dict(kwargs.pop("extra_info", {}) or {}, device=torch.cuda.get_device_name(), baseline=baseline)
    result = measure(benchmark, call, group=group, extra_info=info, min_rounds=20, max_rounds=200, **kwargs)
    if benchmark.enabled:
        benchmark.extra_info["cuda_event_ms"] = cuda_event_ms(fn)
    return result
