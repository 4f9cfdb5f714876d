"""The nms op (see README.md): `reference` (torchvision, the ground truth), `cpu` (fast
vectorised torch/numpy, module `nms.cpu`) and `triton` (module `nms.triton`, imported on demand);
torch_ops.py defines torch.ops.maskrt.nms, warmup.py the Triton warm-up calls. Registered in
maskrt.kernels.registry; select an implementation with `maskrt.kernels.use(...)`.
"""

from ..op import Op
from . import cpu
from .reference import nms as reference
from .warmup import warm_up_calls

OP = Op(name="nms", reference=reference, cpu=cpu.nms, triton="nms.triton:nms", torch_ops="nms.torch_ops",
        warm_up=warm_up_calls)

__all__ = ["OP", "reference"]
