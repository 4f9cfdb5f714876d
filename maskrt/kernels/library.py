"""The ops as torch custom ops: torch.ops.maskrt.* (each op's folder defines its own in torch_ops.py).

CPU kernel = the `cpu` implementation, CUDA kernel = the `triton` implementation (imported on
first CUDA call), plus fake (meta) implementations for shape inference under torch.compile /
torch.export and tracing. NMS and the packed crops of paste_id_map have data-dependent sizes
(ctx.new_dynamic_size()). Outputs never alias inputs (custom-op rule); roi_align's is contiguous.
Importing this module defines them all (the ops of registry.OPS).
"""

from __future__ import annotations

import importlib

from .registry import OPS

for _op in OPS.values():
    importlib.import_module(f".{_op.torch_ops}", __package__)
