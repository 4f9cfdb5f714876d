"""Compile the Triton kernels for a GPU that is not here: PTX and ptxas statistics on a CPU machine.

`triton.compile` needs no GPU when it is given a target (`GPUTarget("cuda", 90, 32)` is
sm_90a, Hopper; 80 is sm_80, Ampere), and the triton wheel ships `ptxas`. So, on this CPU:
- `record_launches()` records the launches a wrapper makes (kernel, grid, arguments) instead of
  running them;
- `specialize(launch, arch)` turns a recorded launch into exactly what triton's JIT would compile
  for it (signature, constexprs, the attributes triton derives from the argument values - e.g.
  "divisible by 16" for an integer - and the launch options);
- `compile_launch(...)` compiles it and runs the bundled `ptxas -v` on the PTX: registers,
  spill stores/loads and stack frame per thread, plus counts of the PTX instructions that
  break bit-exactness (`div.full.f32`, `div.approx.f32`, `div.rn.ftz.f32`, `sqrt.approx.f32`,
  `fma.rn.f32`). The same runs under every triton maskrt supports (make test-triton36: 3.6).

Triton decides at decoration time whether a kernel is compiled or interpreted: with
TRITON_INTERPRET=1 set, `@triton.jit` makes interpreter objects that cannot be compiled, so the
compile runs in a child process without it (`compile_in_subprocess`, `python -m
maskrt.gpu_verify.ptx`). Results are cached beside triton's own cache, keyed by triton's hash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from .recording import Launch

ARCHS = (90, 80)  # sm_90a (H100/H200) and sm_80 (A100)
_STATS_CACHE = "maskrt_ptxas_stats.json"


class _ArgTensor:
    """What triton's argument specialization reads of a tensor: dtype and data_ptr (alignment)."""

    def __init__(self, tensor):
        self.dtype = tensor.dtype
        self._ptr = 1024 + tensor.storage_offset() * tensor.element_size()  # allocations are 512-byte aligned

    def data_ptr(self):
        return self._ptr


def _plain(arg):
    import torch

    return _ArgTensor(arg) if isinstance(arg, torch.Tensor) else arg


def specialize(launch: Launch, arch: int = 90):
    """(signature, constexprs, attrs, options, key) triton's JIT derives for this launch on `arch`.

    `key` is what triton caches compiled kernels by: two launches with equal keys share one
    compile, a different key is a new compile at run time."""
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    kernel = jit_function(launch.kernel)
    backend = make_backend(GPUTarget("cuda", arch, 32))
    kwargs = dict(launch.kwargs, debug=launch.kwargs.get("debug", kernel.debug) or knobs.runtime.debug,
                  instrumentation_mode=knobs.compilation.instrumentation_mode)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, specialization, options = binder(*map(_plain, launch.args), **{k: _plain(v) for k, v in kwargs.items()})
    options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound, specialization, options)
    key = (tuple(str(s) for s in specialization), str(sorted(kwargs.items())))
    return signature, constexprs, attrs, options, key


def jit_function(kernel):
    """The kernel as triton's JIT sees it: an interpreter object (TRITON_INTERPRET=1) is rebuilt as
    a JITFunction of the same function and decorator arguments (its argument specialization is
    then exact; compiling it still needs a process without TRITON_INTERPRET)."""
    if hasattr(kernel, "params"):
        return kernel
    from triton.runtime.jit import JITFunction

    return JITFunction(kernel.fn, **kernel.kwargs)


def target(arch: int):
    from triton.backends.compiler import GPUTarget

    return GPUTarget("cuda", arch, 32)


def compile_launch(launch: Launch, arch: int = 90) -> dict:
    """Compile one recorded launch for sm_<arch> as triton's JIT would, and measure it (compile_source)."""
    from triton.compiler import ASTSource

    signature, constexprs, attrs, options, _ = specialize(launch, arch)
    return compile_source(ASTSource(jit_function(launch.kernel), signature, constexprs, attrs), options.__dict__,
                          arch)


def compile_source(src, options: dict, arch: int = 90) -> dict:
    """Compile a triton ASTSource for sm_<arch> and measure it. Returns a dict: kernel, arch,
    registers, spill_stores, spill_loads, stack (bytes per thread), shared (bytes), num_warps,
    compile_s (0 when triton's cache had it), div_full, div_approx, fma (PTX instruction counts),
    fp_fusion (enable_fp_fusion), params (the kernel's PTX parameters: p pointer, i 32-bit int),
    ptx_lines."""
    import triton
    from triton import knobs

    log = io.StringIO()
    start = time.perf_counter()
    with knobs.nvidia.scope(), contextlib.redirect_stdout(log):
        knobs.nvidia.dump_ptxas_log = True  # triton prints its own `ptxas -v` log (none on a cache hit)
        compiled = triton.compile(src, target=target(arch), options=options)
    seconds = time.perf_counter() - start
    ptx = compiled.asm["ptx"]
    fp_fusion = bool(compiled.metadata.enable_fp_fusion)
    fresh = parse_ptxas_log(log.getvalue()) if "registers" in log.getvalue() else None
    stats = _cached_ptxas_stats(compiled.hash, ptx, arch, fp_fusion, fresh)
    return {"kernel": compiled.metadata.name, "arch": f"sm_{arch}{'a' if arch == 90 else ''}", **stats,
            "shared": int(compiled.metadata.shared), "num_warps": int(compiled.metadata.num_warps),
            "compile_s": round(seconds, 2), **ptx_counts(ptx), "fp_fusion": fp_fusion,
            "params": ptx_params(ptx), "ptx_lines": ptx.count("\n")}


def ptx_params(ptx: str) -> str:
    """The entry's parameters, one letter each: p (64-bit pointer), i (32-bit integer), f (float)."""
    entry = re.search(r"\.entry\s+\w+\((.*?)\)", ptx, re.S)
    kinds = re.findall(r"\.param\s+\.(\w+)", entry.group(1)) if entry else []
    return "".join({"u64": "p", "u32": "i", "s32": "i", "f32": "f"}.get(k, "?") for k in kinds)


def ptx_counts(ptx: str) -> dict:
    """Counts of the float instructions that matter for bit-exactness in a PTX listing: approximate
    divisions (div.full, div.approx), flush-to-zero ones (div.rn.ftz: libdevice's div_rn), approximate
    square roots, and fused multiply-adds."""
    return {"div_full": len(re.findall(r"\bdiv\.full(\.ftz)?\.f32\b", ptx)),
            "div_approx": len(re.findall(r"\bdiv\.approx(\.ftz)?\.f32\b", ptx)),
            "div_ftz": len(re.findall(r"\bdiv\.rn\.ftz\.f32\b", ptx)),
            "sqrt_approx": len(re.findall(r"\bsqrt\.approx(\.ftz)?\.f32\b", ptx)),
            "fma": len(re.findall(r"\bfma\.rn(\.ftz)?\.f32\b", ptx))}


def ptxas_path() -> str:
    from triton.backends.nvidia.compiler import get_ptxas

    return get_ptxas(90).path


def ptxas_stats(ptx: str, arch: int, fp_fusion: bool = True) -> dict:
    """Run the bundled `ptxas -v` (triton's own flags) on a PTX listing: registers, spill
    stores / loads and stack frame, in bytes per thread."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.ptx"
        src.write_text(ptx)
        gpu = f"sm_{arch}a" if arch == 90 else f"sm_{arch}"
        cmd = [ptxas_path(), "-lineinfo", *([] if fp_fusion else ["--fmad=false"]), "-v", "--regAllocOptLevel=2",
               f"--gpu-name={gpu}", str(src), "-o", str(Path(tmp) / "k.o")]
        log = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
    return parse_ptxas_log(log)


def parse_ptxas_log(log: str) -> dict:
    """registers, stack, spill_stores, spill_loads from `ptxas -v` output (one kernel)."""
    def number(pattern: str) -> int:
        m = re.search(pattern, log)
        return int(m.group(1)) if m else 0

    return {"registers": number(r"Used (\d+) registers"), "stack": number(r"(\d+) bytes stack frame"),
            "spill_stores": number(r"(\d+) bytes spill stores"), "spill_loads": number(r"(\d+) bytes spill loads")}


def _cached_ptxas_stats(key: str, ptx: str, arch: int, fp_fusion: bool, fresh: dict | None) -> dict:
    """Stats of a compiled kernel: `fresh` (from triton's own ptxas run) stored, else the stored ones,
    else a new ptxas run (a triton cache hit from before this cache existed)."""
    from triton import knobs

    path = Path(knobs.cache.dir) / _STATS_CACHE
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if fresh is not None or key not in cache:
        cache[key] = fresh or ptxas_stats(ptx, arch, fp_fusion)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(path)
    return cache[key]


def compile_in_subprocess(archs=ARCHS, timeout: float = 1800, cache_dir: str | None = None,
                          processes: int = 2) -> list[dict]:
    """`python -m maskrt.gpu_verify.ptx` in a child process without TRITON_INTERPRET: the compile
    table of every kernel at every configuration the wrappers launch (maskrt.gpu_verify.launches)
    and of the AOT plugin kernels (maskrt.tensorrt.aot). cache_dir: triton's cache (None:
    its default, so repeated runs reuse the compiled kernels; a fresh folder: real timings)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if cache_dir:
        env["TRITON_CACHE_DIR"] = str(cache_dir)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "maskrt.gpu_verify.ptx", "--json", "-", "--arch", *map(str, archs)]
    runs = [subprocess.Popen([*cmd, "--shard", f"{k}/{processes}"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for k in range(processes)]  # one per core
    rows = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=timeout)
        if run.returncode != 0:
            raise RuntimeError(f"compiling the kernels failed:\n{stderr[-4000:]}")
        rows += json.loads(stdout)
    return rows


def table(rows: list[dict]) -> str:
    """The compile table as Markdown."""
    cols = ("config", "arch", "registers", "spill_stores", "spill_loads", "stack", "compile_s", "div_full", "div_ftz",
            "sqrt_approx", "fma", "fp_fusion", "params")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m maskrt.gpu_verify.ptx", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, nargs="+", default=list(ARCHS))
    parser.add_argument("--json", help="write the rows as JSON to this file ('-': stdout)")
    parser.add_argument("--only", help="compile only configurations whose name contains this")
    parser.add_argument("--shard", default="0/1", help="k/n: compile every n-th job from the k-th (parallel runs)")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        parser.error("unset TRITON_INTERPRET: interpreted kernels cannot be compiled")
    from .launches import configurations

    from ..tensorrt.aot import sources

    jobs = [(config, lambda arch, launch=launch: compile_launch(launch, arch)) for config, launch in configurations()]
    jobs += [(config, lambda arch, src=src, opts=opts: compile_source(src, opts, arch)) for config, src, opts in sources()]
    k, n = (int(v) for v in args.shard.split("/"))
    rows = []
    for config, compile_for in jobs[k::n]:
        if args.only and args.only not in config:
            continue
        for arch in args.arch:
            rows.append({"config": config, **compile_for(arch)})
            print(f"{config} sm_{arch}: {rows[-1]['compile_s']} s", file=sys.stderr, flush=True)
    if args.json == "-":
        json.dump(rows, sys.stdout)
    else:
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
