"""Helpers the suites share: rounds sized to a time budget, FLOP counting, CUDA-synchronised calls.

Rounds: on a noisy 2-core machine a stable median needs enough rounds, but a 2 s backbone cannot
have 50. `measure` times one untimed warm-up call and sizes the rounds to about
MASKRT_BENCH_SECONDS (default 2 s) of measured time per benchmark, within [min_rounds,
max_rounds]; every round is one call (iterations=1), so percentiles describe single calls.
With --benchmark-disable (the CI smoke check) the function simply runs once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

DEFAULT_SECONDS = 2.0


def budget_seconds(default: float = DEFAULT_SECONDS) -> float:
    """Seconds of timed rounds per benchmark: MASKRT_BENCH_SECONDS, else `default`."""
    try:
        return float(os.environ.get("MASKRT_BENCH_SECONDS", default))
    except ValueError:
        return default


def plan_rounds(call_seconds: float, budget_s: float, min_rounds: int, max_rounds: int) -> int:
    """Rounds that fit the budget, clamped to [min_rounds, max_rounds]."""
    fit = int(budget_s / call_seconds) if call_seconds > 0 else max_rounds
    return max(min_rounds, min(max_rounds, fit))


def measure(benchmark, fn: Callable, *, group: str, min_rounds: int = 5, max_rounds: int = 100,
            warmup_rounds: int = 1, budget_s: float | None = None, extra_info: dict | None = None):
    """Run `fn` under pytest-benchmark with rounds sized to the budget; returns fn's last result."""
    benchmark.group = group
    benchmark.extra_info.update(extra_info or {})
    if not benchmark.enabled:
        return benchmark(fn)
    start = time.perf_counter()
    fn()  # the first warm-up round, timed to plan the rounds
    call_seconds = time.perf_counter() - start
    rounds = plan_rounds(call_seconds, budget_s if budget_s is not None else budget_seconds(), min_rounds, max_rounds)
    benchmark.extra_info.setdefault("planned_rounds", rounds)
    return benchmark.pedantic(fn, rounds=rounds, warmup_rounds=max(0, warmup_rounds - 1), iterations=1)


def count_flops(fn: Callable, *args, **kwargs) -> int:
    """Floating-point operations of one call of fn(*args, **kwargs), counted by
    torch.utils.flop_counter.FlopCounterMode (convolutions, matrix products, attention; ops
    without a formula, such as RoIAlign, NMS or elementwise work, count zero)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def median_seconds(benchmark) -> float | None:
    """The median round time of a finished benchmark (None when disabled or not run)."""
    stats = getattr(benchmark, "stats", None)
    return float(stats.stats.median) if stats is not None else None


def cuda_synchronized(fn: Callable) -> Callable:
    """fn followed by torch.cuda.synchronize(): wall time then covers the queued GPU work."""
    import torch

    def call():
        result = fn()
        torch.cuda.synchronize()
        return result

    return call
