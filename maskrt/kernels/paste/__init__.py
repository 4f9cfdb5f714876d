"""The paste op (see README.md): `reference` (torchvision, the ground truth), `cpu` (fast
vectorised torch/numpy, module `paste.cpu`) and `triton` (module `paste.triton`, imported on demand);
torch_ops.py defines torch.ops.maskrt.paste, warmup.py the Triton warm-up calls. Registered in
maskrt.kernels.registry; select an implementation with `maskrt.kernels.use(...)`.
"""

from ..op import Op
from . import cpu
from .reference import paste as reference
from .warmup import warm_up_calls

OP = Op(name="paste", reference=reference, cpu=cpu.paste, triton="paste.triton:paste", torch_ops="paste.torch_ops",
        warm_up=warm_up_calls)

__all__ = ["OP", "reference"]
