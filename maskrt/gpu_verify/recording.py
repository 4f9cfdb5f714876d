"""Record Triton kernel launches instead of running them: what the compile checks compile."""

from __future__ import annotations

import contextlib
import dataclasses


@dataclasses.dataclass
class Launch:
    """One recorded `kernel[grid](*args, **kwargs)`."""

    kernel: object
    grid: tuple
    args: tuple
    kwargs: dict

    @property
    def name(self) -> str:
        return self.kernel.fn.__name__


@contextlib.contextmanager
def record_launches():
    """Within the block, `kernel[grid](...)` of any @triton.jit kernel is recorded, not run.

    Yields the list the launches are appended to. Kernels must be compiled objects (no
    TRITON_INTERPRET=1 at their decoration)."""
    from triton.runtime.jit import KernelInterface

    launches: list[Launch] = []
    original = KernelInterface.__getitem__

    def getitem(self, grid):
        return lambda *args, **kwargs: launches.append(Launch(self, tuple(grid), args, dict(kwargs)))

    KernelInterface.__getitem__ = getitem
    try:
        yield launches
    finally:
        KernelInterface.__getitem__ = original
