"""Compile every Triton kernel configuration once, at load, instead of on the first frames.

Triton compiles a kernel on its first launch for each new specialization (dtypes, constexprs,
and - unless excluded by do_not_specialize - integers equal to 1 or divisible by 16). Our
kernels do not specialize per-frame sizes, so one launch of each configuration, on small
inputs, compiles everything a stream will use: `warm_up(device, dtype)` makes those launches.
`exercise(device, dtype, small)` is the list of calls; on fake CUDA tensors at the model's sizes
(small=False) it is what `maskrt.gpu_verify.launches` records for the compile tests, and the tests
check that the small calls launch the same specializations as the model-sized ones.
"""

from __future__ import annotations

import torch

from .registry import OPS


def exercise(device, dtype: torch.dtype = torch.float32, small: bool = True) -> None:
    """Call every op once per kernel configuration on `device` (dtype: the features' dtype)."""
    for op in OPS.values():
        op.warm_up(device, small, dtype)


def warm_up(device, dtype: torch.dtype = torch.float32) -> None:
    """Compile (or load from triton's cache) every kernel the model and the plugins launch."""
    exercise(device, dtype, small=True)
