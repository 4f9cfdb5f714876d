"""The ops, registered once: adding an op is a folder kernels/<name>/ whose __init__ defines `OP`
(maskrt.kernels.op.Op) plus one entry below. Dispatch (`use`, `get`), the torch custom ops
(torch.ops.maskrt.*), the Triton warm-up and the GPU compile checks all read this table."""

from __future__ import annotations

from . import nms, paste, roi_align
from .op import Op

OPS: dict[str, Op] = {op.name: op for op in (roi_align.OP, nms.OP, paste.OP)}
