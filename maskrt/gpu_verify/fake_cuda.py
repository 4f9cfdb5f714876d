"""Run the GPU path's host code on a machine without a GPU: fake CUDA tensors, kernel launches recorded.

`fake_cuda()` runs a block under torch's FakeTensorMode, whose tensors carry shapes, dtypes and a
device (here "cuda") but no data. Inside it:
- tensors can be made on "cuda" without a GPU or CUDA libraries (real tensors handed in, such
  as a video frame from numpy, are taken in as fake ones);
- an op mixing a CPU tensor with a CUDA one raises FakeTensorDeviceMismatchError, as on a GPU;
- a data-dependent host read raises DataDependentOutputException (`.item()`, `int(t)`,
  `bool(t)`, `.tolist()`) or DynamicOutputShapeException (`nonzero`, boolean indexing): on a
  GPU each is a device-to-host copy that waits for the queue (a sync);
- a device-to-host copy (`.cpu()`, `.to("cpu")`, `.numpy()` of a CUDA tensor) raises HostCopy, and
  a host-to-device copy (`torch.tensor(..., device="cuda")`, `.to("cuda")` or `copy_` of a CPU
  tensor: on a GPU torch waits for the stream, a sync) raises HostToDeviceCopy;
- `kernel[grid](...)` of every Triton kernel is recorded (maskrt.gpu_verify.recording.Launch), not run:
  its outputs stay what the wrapper allocated, as the op's fake implementation describes them.
The one host read a wrapper makes on purpose - a data-dependent output size, inherent in
returning a Tensor[K] - goes through `maskrt.kernels._triton.host_read`; inside fake_cuda it is
recorded in `FakeRun.host_reads` and answered as the caller says (an upper bound of a size). The
uploads made on purpose (the frame) go through `maskrt.kernels._triton.upload`, recorded in
`FakeRun.uploads`. Inputs a test prepares inside the block are made under `run.setup()`, where
copies are not checked.

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


class HostToDeviceCopy(RuntimeError):
    """A host-to-device copy inside fake_cuda() that did not go through kernels._triton.upload."""


@dataclasses.dataclass
class FakeRun:
    """What happened inside one fake_cuda() block."""

    launches: list = dataclasses.field(default_factory=list)  # maskrt.gpu_verify.recording.Launch
    host_reads: list = dataclasses.field(default_factory=list)  # (what, fake answer) per host_read call
    uploads: list = dataclasses.field(default_factory=list)  # (what, shape) per upload call
    guard: "_CopyGuard | None" = None

    def kernels(self) -> list[str]:
        return [launch.name for launch in self.launches]

    @contextlib.contextmanager
    def setup(self):
        """Copies here are the test's own (making inputs), not the code's: not checked, not counted."""
        saved, self.guard.checking = self.guard.checking, False
        try:
            yield
        finally:
            self.guard.checking = saved


class _CopyGuard(TorchDispatchMode):
    """Raise on device-to-host copies (unless allowed) and on host-to-device copies (aten._to_copy /
    copy_ / _copy_from between a CPU and a CUDA tensor) while `checking`."""

    def __init__(self, allow_host_copies: bool):
        super().__init__()
        self.allow_host_copies, self.checking = allow_host_copies, True

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if self.checking and name in ("_to_copy", "to", "copy_", "_copy_from"):
            src, dst = {"copy_": (args[1], args[0]) if len(args) > 1 else (None, None),
                        "_copy_from": (args[0], args[1]) if len(args) > 1 else (None, None)}.get(
                name, (args[0], None))
            if isinstance(src, torch.Tensor):
                target = dst.device if isinstance(dst, torch.Tensor) else torch.device(kwargs.get("device")
                                                                                       or src.device)
                if src.device.type == "cuda" and target.type == "cpu" and not self.allow_host_copies:
                    raise HostCopy(f"device-to-host copy ({func}) of a {tuple(src.shape)} CUDA tensor")
                if src.device.type == "cpu" and target.type == "cuda":
                    raise HostToDeviceCopy(f"host-to-device copy ({func}) of a {tuple(src.shape)} CPU tensor "
                                           "(on a GPU: a sync); make it on the device, or declare it (_triton.upload)")
        return func(*args, **kwargs)


@contextlib.contextmanager
def fake_cuda(allow_host_copies: bool = False):
    """Fake CUDA tensors, recorded launches, recorded size reads and uploads; yields a FakeRun.

    allow_host_copies: let `.cpu()` through (for code whose last step copies results back)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from ..kernels import _triton
    from .recording import record_launches

    run = FakeRun(guard=_CopyGuard(allow_host_copies))

    def fake_read(values, answer, what=""):
        run.host_reads.append((what, tuple(answer)))
        return [int(b) for b in answer]

    def fake_upload(value, device, what=""):
        run.uploads.append((what, tuple(value.shape)))
        with run.setup():
            return value.to(device)

    saved = _triton._host_reader, _triton._uploader
    _triton._host_reader, _triton._uploader = fake_read, fake_upload
    try:
        with FakeTensorMode(allow_non_fake_inputs=True), record_launches() as launches, run.guard:
            run.launches = launches
            yield run
    finally:
        _triton._host_reader, _triton._uploader = saved
