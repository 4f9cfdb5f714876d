"""The record each op folder fills in: its implementations and what the tooling needs of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Op:
    """One data-dependent op of the model.

    name: the op's one name (kernels/<name>/, torch.ops.maskrt.<name>, tests and benchmarks);
    reference / cpu: its implementations (torchvision, the ground truth; the fast CPU one);
    triton: "module:function" (relative to maskrt.kernels) of the GPU implementation, imported on
    first use (importing triton costs seconds); torch_ops: module (relative to maskrt.kernels)
    whose import defines torch.ops.maskrt.<name> (CPU kernel = cpu, CUDA kernel = triton, fake);
    warm_up: warm_up(device, small, dtype) makes one call per Triton kernel configuration the model
    launches (small inputs, or the model's sizes with small=False: what the compile checks compile).
    """

    name: str
    reference: Callable
    cpu: Callable
    triton: str
    torch_ops: str
    warm_up: Callable
