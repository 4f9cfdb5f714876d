"""Compile time of every Triton kernel configuration for sm_90a and sm_80, on this CPU (group
"gpu compile"): the first frame through a plugin (or the torch backend) waits for these
compiles unless the kernels were warmed up at load. Each round compiles everything in a child
process with an empty triton cache (maskrt.gpu_verify.ptx); the per-kernel seconds, registers,
spills and stack go to extra_info. Measured, not asserted (tests/gpu_verify/test_ptx.py asserts
the spills and instructions). Not quick: about a minute on 2 cores.
"""

from __future__ import annotations

import tempfile

from maskrt.gpu_verify import ptx


def test_compile_all_kernels(benchmark):
    rows = []

    def compile_all():
        with tempfile.TemporaryDirectory() as cache:
            rows[:] = ptx.compile_in_subprocess(cache_dir=cache)

    benchmark.group = "gpu compile"
    benchmark.pedantic(compile_all, rounds=1, iterations=1, warmup_rounds=0)  # each round is a minute
    if benchmark.enabled:
        benchmark.extra_info["kernels"] = {f"{r['config']} {r['arch']}": {k: r[k] for k in (
            "compile_s", "registers", "spill_stores", "stack")} for r in rows}
