"""Run the GPU path's host code on a machine without a GPU: fake CUDA tensors, kernel launches recorded.

`fake_cuda()` runs a block under torch's FakeTensorMode, whose tensors carry shapes, dtypes and a
device (here "cuda") but no data. Inside it:
- tensors can be made on "cuda" without a GPU or CUDA libraries (real tensors handed in, such
  as a video frame from numpy, are taken in as fake ones);
- an op mixing a CPU tensor with a CUDA one raises FakeTensorDeviceMismatchError, as on a GPU;
- a data-dependent host read raises DataDependentOutputException (`.item()`, `int(t)`,
  `bool(t)`, `.tolist()`) or DynamicOutputShapeException (`nonzero`, boolean indexing): on a
  GPU each is a device-to-host copy that waits for the queue (a sync);
- a device-to-host copy (`.cpu()`, `.to("cpu")`, `.numpy()` of a CUDA tensor) raises HostCopy;
- `kernel[grid](...)` of every Triton kernel is recorded (maskrt.gpu_verify.recording.Launch), not run:
  its outputs stay what the wrapper allocated, as the op's fake implementation describes them.
The one host read a wrapper makes on purpose - a data-dependent output size, inherent in
returning a Tensor[K], or an input check - goes through `maskrt.kernels._triton.host_read`;
inside fake_cuda it is recorded in `FakeRun.host_reads` and answered as the caller says (an
upper bound of a size, 0 for a check).

So `with fake_cuda() as run: paste(...)` proves that paste's host code makes no sync and no
hidden CPU tensor, and shows what it launches.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class HostCopy(RuntimeError):
    """A device-to-host copy inside fake_cuda()."""


@dataclasses.dataclass
class FakeRun:
    """What happened inside one fake_cuda() block."""

    launches: list = dataclasses.field(default_factory=list)  # maskrt.gpu_verify.recording.Launch
    host_reads: list = dataclasses.field(default_factory=list)  # (what, fake answer) per host_read call

    def kernels(self) -> list[str]:
        return [launch.name for launch in self.launches]


class _NoHostCopies(TorchDispatchMode):
    """Raise on device-to-host copies (aten._to_copy / copy_ from a CUDA tensor to a CPU one)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in ("_to_copy", "to", "copy_", "_copy_from"):
            src = args[1] if name in ("copy_", "_copy_from") else args[0]
            dst_cpu = (args[0].device.type == "cpu" if name == "copy_" else
                       torch.device(kwargs.get("device") or src.device).type == "cpu")
            if isinstance(src, torch.Tensor) and src.device.type == "cuda" and dst_cpu:
                raise HostCopy(f"device-to-host copy ({func}) of a {tuple(src.shape)} CUDA tensor")
        return func(*args, **kwargs)


@contextlib.contextmanager
def fake_cuda(allow_host_copies: bool = False):
    """Fake CUDA tensors, recorded launches, recorded size reads; yields a FakeRun.

    allow_host_copies: let `.cpu()` through (for code whose last step copies results back)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from ..kernels import _triton
    from .recording import record_launches

    run = FakeRun()

    def fake_read(values, answer, what=""):
        run.host_reads.append((what, tuple(answer)))
        return [int(b) for b in answer]

    saved = getattr(_triton, "_host_reader", None)
    _triton._host_reader = fake_read
    try:
        with FakeTensorMode(allow_non_fake_inputs=True), record_launches() as launches, \
                (contextlib.nullcontext() if allow_host_copies else _NoHostCopies()):
            run.launches = launches
            yield run
    finally:
        _triton._host_reader = saved
