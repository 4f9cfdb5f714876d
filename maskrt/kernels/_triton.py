"""Lazy access to Triton for the kernels (importing triton costs seconds; CPU paths never need it).

Triton kernels run on the tensors' device: CUDA on a GPU, or CPU tensors when the interpreter
is enabled (TRITON_INTERPRET=1 set before triton is imported), which is how they are tested here.
"""

from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=1)
def triton_modules():
    """(triton, triton.language); raises ImportError with a clear message if unavailable."""
    try:
        import triton
        import triton.language as tl
    except Exception as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"the triton kernels need the triton package ({exc})") from exc
    if interpreted():
        _interpret_standard_library(tl)
    return triton, tl


def _interpret_standard_library(tl) -> None:
    """Make triton.language's jitted standard functions (tl.zeros, tl.sum, tl.cdiv, ...) interpretable.

    triton decides at decoration time whether a function is compiled or interpreted. `import
    torch` imports triton, so when TRITON_INTERPRET=1 is set after torch was imported (e.g. by a
    conftest), our kernels are interpreted but the standard library was decorated for
    compilation, and calling it from an interpreted kernel fails. Re-wrap those functions once.
    """
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    for name in dir(tl.standard):
        obj = getattr(tl.standard, name)
        if isinstance(obj, JITFunction) and not isinstance(obj, InterpretedFunction):
            new = InterpretedFunction(obj.fn)
            setattr(tl.standard, name, new)
            if getattr(tl, name, None) is obj:
                setattr(tl, name, new)


def interpreted() -> bool:
    """True when Triton runs kernels in its Python interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def check_device(*tensors) -> None:
    """Triton needs CUDA tensors, or CPU tensors under the interpreter."""
    for t in tensors:
        if t.device.type == "cpu" and not interpreted():
            raise RuntimeError("triton kernels need CUDA tensors, or CPU tensors with TRITON_INTERPRET=1 set "
                               "before triton is imported")


def launch_options() -> dict:
    """Compile options for bit-exact kernels: no FMA contraction on the GPU (ignored by the interpreter).

    enable_fp_fusion=False stops LLVM contracting a * b + c into fma.rn.f32 and makes triton run
    ptxas with --fmad=false; explicit tl.fma calls stay fused."""
    return {} if interpreted() else {"enable_fp_fusion": False}


_host_reader = None  # set by maskrt.gpu_verify.fake_cuda to record the reads
_uploader = None  # set by maskrt.gpu_verify.fake_cuda to record the uploads


def host_read(values, fake_answer, what: str = "") -> list[int]:
    """The one host read a wrapper makes on purpose (on a GPU, a device-to-host copy that waits for
    the queued work): data-dependent output sizes, or an input check. values: Tensor[k] integer on
    the device; fake_answer: k ints that maskrt.gpu_verify.fake_cuda answers with (upper bounds of
    sizes, 0 for "no problem"). Every deliberate read of the GPU path goes through here, so
    tests can see and count them."""
    if _host_reader is not None:
        return _host_reader(values, fake_answer, what)
    return [int(v) for v in values.tolist()]


def upload(value, device, what: str = ""):
    """value (a CPU Tensor) on `device`: the one host-to-device copy a caller makes on purpose (the
    frame itself). On a GPU a copy from pageable memory waits for the stream (torch synchronises a
    blocking copy): a sync. Every deliberate upload of the GPU path goes through here, so tests
    (maskrt.gpu_verify.fake_cuda) see and count them; any other one is a test failure."""
    if _uploader is not None:
        return _uploader(value, device, what)
    return value.to(device)


def device_values(values, dtype, device):
    """Tensor[k] of the host numbers `values` made on `device` by fill kernels: no host-to-device
    copy (torch.tensor(values, device=...) copies, and on a GPU waits). Each value rounds to dtype
    as torch.tensor would round it."""
    import torch

    return torch.stack([torch.full((), v, dtype=dtype, device=device) for v in values])
